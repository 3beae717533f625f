# vstream developer entry points. Everything runs from the project's .venv, which
# scripts/setup-env.sh creates and keeps up to date (it skips pip when nothing changed).

VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.DEFAULT_GOAL := help
.PHONY: help setup setup-browser demo test test-fast docs-images bench clean

help:
	@echo "make setup      create/refresh .venv (vLLM CPU, embedded model, test tools)"
	@echo "make demo       setup, then stream three prompts with the embedded model"
	@echo "make test       setup (with Chromium), then the whole test suite"
	@echo "make test-fast  unit tests only"
	@echo "make docs-images  re-take docs/panel.png, docs/quickstart.png, docs/concurrency.png"
	@echo "make bench      CPU smoke benchmark -> benchmarks/results/cpu-smoke.json"
	@echo "make clean      remove caches and test artifacts (keeps .venv; 'make distclean' drops it)"
	@echo "PYTEST_ARGS='tests/browser -x' make test   passes extra arguments to pytest"

setup:
	bash scripts/setup-env.sh

setup-browser:
	bash scripts/setup-env.sh --browser

demo: setup
	$(PY) -m vstream.demo

test: setup-browser
	$(PYTEST) $(PYTEST_ARGS)

test-fast: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

# Tests save these images to tests/artifacts/; VSTREAM_UPDATE_DOCS=1 sends them to docs/ instead.
DOCS_IMAGE_TESTS := \
	"tests/kernel/test_notebooks.py::test_notebook_runs_top_to_bottom[03_concurrency.ipynb]" \
	tests/browser/test_panel_browser.py::test_panel_streams_stops_exports_and_keeps_the_kernel_free \
	tests/browser/test_quickstart_browser.py

docs-images: setup-browser
	VSTREAM_UPDATE_DOCS=1 $(PYTEST) $(DOCS_IMAGE_TESTS) $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.stream --device cpu --out benchmarks/results/cpu-smoke.json

clean:
	rm -rf .pytest_cache tests/artifacts build dist
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +
	find . -path ./.venv -prune -o -type d -name '*.egg-info' -exec rm -rf {} +

.PHONY: distclean
distclean: clean
	rm -rf $(VENV)
