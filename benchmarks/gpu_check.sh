#!/usr/bin/env bash
# The GPU check in one command (see benchmarks/gpu_check.py):
#   bash benchmarks/gpu_check.sh [--iters N] [--batch N] [--peak-tflops T]
# GPU_CHECK_ITERS, GPU_CHECK_WARMUP, GPU_CHECK_BATCH and
# GPU_CHECK_PEAK_TFLOPS set the defaults. Prints one Markdown table; exits
# non-zero on any failure, 0 with a message when there is no CUDA device.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$ROOT/benchmarks/gpu_check.py" "$@"
