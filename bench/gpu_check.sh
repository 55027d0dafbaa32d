#!/usr/bin/env bash
# GPU check of the paper preset: a few bf16 training steps of MFFCL at the paper's
# size (random weights) at batch 16, 8 and 6, with and without gradient checkpointing; clips/s,
# peak GPU memory, caption generation speed; prints a Markdown table named after the card.
#
#   bench/gpu_check.sh [--out FILE.md] [--batch-sizes 16,8,6] [--steps 5] [--warmup 2] ...
#   bench/gpu_check.sh --device cpu --tiny      # dry run of the script on a CPU
#
# No network is needed or used. Python: $VIDCAP_PYTHON if set, else the project's .venv when it
# is there and imports torch, else python3 on PATH (an existing torch install). It never builds a
# venv or installs anything: vidcap runs from src/ (PYTHONPATH); torch, transformers, tokenizers,
# safetensors, PyYAML and numpy must be importable. Without a CUDA GPU it stops with one line
# (exit 2), unless --device cpu is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1

py="${VIDCAP_PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then
    py=.venv/bin/python
  else
    py="$(command -v python3 || true)"
  fi
fi
if [[ -z "$py" ]]; then
  echo "gpu_check: no Python found (no .venv, no python3 on PATH; set VIDCAP_PYTHON)" >&2
  exit 2
fi

missing="$("$py" -c '
import importlib.util
need = ["torch", "transformers", "tokenizers", "safetensors", "yaml", "numpy"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))')"
if [[ -n "$missing" ]]; then
  echo "gpu_check: $py cannot import: $missing (no network here to install them)" >&2
  exit 2
fi

on_cpu=0
prev=""
for arg in "$@"; do
  if [[ "$arg" == "--device=cpu" || ( "$prev" == "--device" && "$arg" == "cpu" ) ]]; then
    on_cpu=1
  fi
  prev="$arg"
done
if [[ $on_cpu -eq 0 ]]; then
  if ! why="$("$py" -c '
import sys, torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA GPU")
    sys.exit(1)' 2>&1)"; then
    echo "gpu_check: $py: ${why:-cannot query CUDA}; nothing to measure (--device cpu --tiny for a dry run)" >&2
    exit 2
  fi
fi

export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "gpu_check: python $py" >&2
exec "$py" bench/gpu_check.py "$@"
