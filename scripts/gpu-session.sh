#!/usr/bin/env bash
# vstream's GPU checks, one stage per device call (the device tool's 10-minute limit per command).
# Run on the GPU machine from the repo root, after the bundle from ../shared/gpu/make-bundle is
# installed:  bash scripts/gpu-session.sh STAGE...   (results and logs go to $OUT)
#
#   startup        start-up to the first token in fresh processes, raw AsyncLLM vs vstream.engine(),
#                  eager and CUDA graphs, cold and warm, the levers, and what importing vLLM costs
#   cpu-token      CUDA graphs, 1/8/64 streams x 128 tokens, 10 rounds: API, magic, panel beside raw
#   cpu-token-api  the same for the API alone, 20 rounds (a narrower interval)
#   startup-eager  warm eager starts only, raw AsyncLLM vs vstream.engine(), 4 rounds (run after a
#                  stage that started an engine, so the model is converted and the caches are warm)
#   long           CUDA graphs, 1 x 100, 1 and 8 x 2,000 and 1 x 4,000 tokens, with and without the logprob view
#   repaint        CUDA graphs, the magic and the panel at 1 x 100 and 1 x 4,000 tokens, with and without the
#                  logprob view: the painting thread's CPU per repaint early and late in the answer
#   import-probe   importing vLLM in a fresh interpreter, again, and two interpreters at once
#   qwen-1p5b      a Qwen2-style 1.5B model of dummy weights: the API and vllm serve + openai beside raw
#   feeding-ab     the output handler feeding Streams (push) against a task per request (generate), A/B
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

[ $# -gt 0 ] || { echo "usage: $0 STAGE..."; exit 2; }
for stage in "$@"; do
echo "== stage $stage ($(date -u +%H:%M:%S))"
case "$stage" in
  startup)
    single python3 -m benchmarks.startup --device cuda --modes eager,graphs --rounds 1 --import-probe \
      --levers vstream-spawn,vstream-fit --out "$OUT/$card-startup.json" 2>&1 | tee "$OUT/$card-startup.log"
    ;;
  cpu-token)
    single python3 -m benchmarks.stream --device cuda --mode graphs --sizes 1x128,8x128,64x128 --rounds 10 \
      --out "$OUT/$card-cpu-token.json" 2>&1 | tee "$OUT/$card-cpu-token.log"
    ;;
  cpu-token-api)
    single python3 -m benchmarks.stream --device cuda --mode graphs --sizes 1x128,8x128,64x128 --rounds 20 \
      --paths api --out "$OUT/$card-cpu-token-api.json" 2>&1 | tee "$OUT/$card-cpu-token-api.log"
    ;;
  startup-eager)
    single python3 -m benchmarks.startup --device cuda --modes eager --rounds 4 --no-cold \
      --out "$OUT/$card-startup-eager.json" 2>&1 | tee "$OUT/$card-startup-eager.log"
    ;;
  long)
    single python3 -m benchmarks.stream --device cuda --mode graphs --sizes 1x100,1x2000,8x2000,1x4000 --rounds 1 \
      --logprobs both --out "$OUT/$card-long.json" 2>&1 | tee "$OUT/$card-long.log"
    ;;
  repaint)
    single python3 -m benchmarks.stream --device cuda --mode graphs --sizes 1x100,1x4000 --rounds 1 \
      --paths magic,panel --logprobs both --out "$OUT/$card-repaint.json" 2>&1 | tee "$OUT/$card-repaint.log"
    ;;
  import-probe)
    single python3 -c "from benchmarks.startup import import_probe; print(import_probe().line())" \
      2>&1 | tee "$OUT/$card-import-probe.log"
    ;;
  qwen-1p5b)
    single python3 -m benchmarks.stream --device cuda --mode graphs --model qwen2-1.5b \
      --sizes 1x128,8x128,64x128 --rounds 4 --paths api,server --out "$OUT/$card-qwen-1p5b.json" \
      2>&1 | tee "$OUT/$card-qwen-1p5b.log"
    ;;
  feeding-ab)
    single python3 scripts/feeding-ab.py 1x128,8x128,64x128 10 graphs 2>&1 | grep -v "it/s]" | tee "$OUT/$card-feeding-ab.log"
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
done
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader
