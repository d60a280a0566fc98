#!/usr/bin/env bash
# Builds mca-convert (Release) and runs the main job on the shipped tiny Llama:
# HF -> MCA with tensor parallel 2 x pipeline parallel 2, then MCA -> HF, then checks the result.
# Safe to run again: dependencies are installed only when missing, outputs are overwritten.
#
# Output: /tmp/mcaconv-demo/mca (MCA checkpoint), /tmp/mcaconv-demo/hf (HF checkpoint again).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=tests/data/tiny-llama
demo=/tmp/mcaconv-demo
jobs="${MCACONV_JOBS:-2}"

step() {
  printf '\n==> %s\n' "$*"
}

step "build dependencies"
tools/install-deps.sh

step "build mca-convert (Release) into build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
ninja -C build -j "$jobs" mca-convert

step "HF -> MCA: $model -> $demo/mca (TP 2, PP 2)"
build/mca-convert --checkpoint_path "$model" --output_path "$demo/mca" \
  --tensor_model_parallel_size 2 --pipeline_model_parallel_size 2 --bf16 --overwrite

step "MCA -> HF: $demo/mca -> $demo/hf"
build/mca-convert --checkpoint_path "$demo/mca" --output_path "$demo/hf" --overwrite

step "inspect the results"
build/mca-convert inspect "$demo/mca"
build/mca-convert inspect "$demo/hf"

# An independent check where the Python test dependencies are installed: every tensor of the
# round trip equals the original bit for bit.
if python3 -c "import safetensors, torch, transformers" >/dev/null 2>&1; then
  step "compare $demo/hf with $model (bit-exact, via tests/python/models.py)"
  PYTHONPATH=tests/python python3 - "$model" "$demo/hf" <<'PY'
import sys
import models
models.assert_state_dicts_equal(models.load_safetensors_dir(sys.argv[1]),
                                models.load_safetensors_dir(sys.argv[2]))
print("round trip is bit-exact")
PY
fi

step "done: $demo/mca and $demo/hf"
