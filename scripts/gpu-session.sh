#!/usr/bin/env bash
# vstream's GPU checks, one stage per device call (the device tool's 10-minute limit per command).
# Run on the GPU machine from the repo root, after the bundle from ../shared/gpu/make-bundle is
# installed:  bash scripts/gpu-session.sh STAGE   (results and logs go to $OUT)
#
#   bench-compiled  benchmark, CUDA graphs, 1/8/64 streams x 128 tokens, 10 rounds: vstream's paths
#   bench-eager     the same in eager mode, x 32 tokens (eager decodes ~5x slower), 8 rounds
#   mixed-eager     eager, only vstream's paths beside raw streams in one batch (a short run)
#   alternatives-compiled / alternatives-eager
#                   every path, vllm serve + openai beside the engine, transformers (eager: restart())
#   server-eager    eager (vstream's default), only the API and vllm serve + openai, each beside raw
#   profile         the compiled benchmark under py-spy (it perturbs the run: read the profile only)
#   memory-tests    tests/gpu/test_gpu_memory.py: the default engine's memory, sleep and the idle timer,
#                   16 kernels with default engines at once
#   gpu-tests       tests/gpu on one GPU: engine memory, kernel shutdown/restart memory
#   engine-tests    the engine, magic and kernel tests (-m engine) on CUDA vLLM
#   multi-gpu       tests/gpu -m multigpu: tensor and pipeline parallel on two GPUs
set -uo pipefail
export PYTHONPATH=/root/site:$PWD/src:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export PATH=/root/site/bin:$PATH
# NVLink multicast stays off (the device image sets these; a program using it can take a shared
# host's GPUs out of service): restated so that no stage depends on the image alone.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/vstream-out}
mkdir -p "$OUT"
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
card=$(echo "$name" | grep -oiE 'h100|h200|a100|l40s|b200' | head -n 1 | tr '[:upper:]' '[:lower:]')
card=${card:-gpu}
echo "== $(nvidia-smi -L | wc -l) x $name"

# One GPU for everything but the multi-GPU stage, so that numbers compare across machines.
single() { CUDA_VISIBLE_DEVICES=0 "$@"; }

# py-spy samples from outside the process without pausing it (--nonblocking): the profile costs
# the benchmark nothing. Containers may forbid ptrace; then the benchmark runs unprofiled.
profiled() {
  if command -v py-spy >/dev/null && py-spy record --nonblocking -o /dev/null -- python3 -c "import time; time.sleep(0.3)" >/dev/null 2>&1; then
    py-spy record --nonblocking --subprocesses --threads --idle --rate 200 --format raw \
      -o "$OUT/$card-profile.txt" -- "$@"
  else
    echo "(py-spy unavailable or not permitted here: running without a profile)"
    "$@"
  fi
}

stage=${1:?stage}
case "$stage" in
  bench-compiled)
    single python3 -m benchmarks.stream --device cuda --modes compiled --sizes 1x128,8x128,64x128 \
      --reps 10 --no-alternatives --no-restart --paths raw_ids,api,magic,panel,mixed,mixed_magic,mixed_panel \
      --out "$OUT/$card-compiled.json" 2>&1 | tee "$OUT/$card-compiled.log"
    ;;
  bench-eager)
    single python3 -m benchmarks.stream --device cuda --modes eager --sizes 1x32,8x32,64x32 \
      --reps 8 --no-alternatives --no-restart --paths raw_ids,api,magic,panel,mixed,mixed_magic,mixed_panel \
      --out "$OUT/$card-eager.json" 2>&1 | tee "$OUT/$card-eager.log"
    ;;
  mixed-eager)
    single python3 -m benchmarks.stream --device cuda --modes eager --sizes 1x32,8x32,64x32 \
      --reps 6 --no-alternatives --no-restart --paths mixed,mixed_magic,mixed_panel \
      --out "$OUT/$card-mixed-eager.json" 2>&1 | tee "$OUT/$card-mixed-eager.log"
    ;;
  alternatives-compiled)
    single python3 -m benchmarks.stream --device cuda --modes compiled --sizes 1x128,8x128,64x128 \
      --reps 8 --alternatives --no-restart \
      --out "$OUT/$card-alternatives-compiled.json" 2>&1 | tee "$OUT/$card-alternatives-compiled.log"
    ;;
  server-eager)
    single python3 -m benchmarks.stream --device cuda --modes eager --sizes 1x32,8x32,64x32 --reps 6 \
      --alternatives --no-transformers --no-restart --paths api,server \
      --out "$OUT/$card-server-eager.json" 2>&1 | tee "$OUT/$card-server-eager.log"
    ;;
  alternatives-eager)
    single python3 -m benchmarks.stream --device cuda --modes eager --sizes 1x32,8x32,64x32 --reps 6 \
      --alternatives --paths raw_ids,api,magic,panel,server \
      --out "$OUT/$card-alternatives-eager.json" 2>&1 | tee "$OUT/$card-alternatives-eager.log"
    ;;
  profile)
    single profiled python3 -m benchmarks.stream --device cuda --modes compiled --sizes 1x128,8x128,64x128 \
      --reps 3 --no-alternatives --no-restart --out "$OUT/$card-profiled.json" 2>&1 | tee "$OUT/$card-profiled.log"
    if [ -f "$OUT/$card-profile.txt" ]; then
      python3 -m benchmarks.profile_summary "$OUT/$card-profile.txt" > "$OUT/$card-profile-summary.txt" \
        && gzip -f "$OUT/$card-profile.txt" && cat "$OUT/$card-profile-summary.txt"
    fi
    ;;
  memory-tests)
    VSTREAM_RESULTS=$OUT single python3 -m pytest tests/gpu/test_gpu_memory.py -m gpu -p no:cacheprovider -q -s \
      2>&1 | tee "$OUT/$card-memory-tests.log"
    ;;
  gpu-tests)
    VSTREAM_RESULTS=$OUT single python3 -m pytest tests/gpu -m "gpu and not multigpu" -p no:cacheprovider -q -s \
      2>&1 | tee "$OUT/$card-gpu-tests.log"
    ;;
  engine-tests)
    single python3 -m pytest tests/engine tests/ipython/test_magics.py tests/kernel/test_magic_in_kernel.py \
      -m "engine or kernel" -p no:cacheprovider -q 2>&1 | tee "$OUT/$card-engine-tests.log"
    ;;
  multi-gpu)
    VSTREAM_RESULTS=$OUT python3 -m pytest tests/gpu -m multigpu -p no:cacheprovider -q -s \
      2>&1 | tee "$OUT/$card-x$(nvidia-smi -L | wc -l)-multi-gpu.log"
    ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader
