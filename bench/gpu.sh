#!/usr/bin/env bash
# Every benchmark on one CUDA device, in about 15 minutes, each against its peers on the same device.
#
#   bash bench/gpu.sh                 # cuda:0, precision auto
#   PRECISION=fp16 bash bench/gpu.sh cuda:1
#
# Each script's first line names the device, precision, CPU and date. The store (Qdrant Edge) and the
# reader run on the CPU whatever the device; they are included so one run records the whole machine.
# Output goes to the terminal and to bench/results/gpu-<UTC time>.txt.
set -euo pipefail

DEVICE="${1:-cuda:0}"
PRECISION="${PRECISION:-auto}"
PY="${PYTHON:-python}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false

"$PY" - "$DEVICE" <<'PYEOF'
import sys
import torch
device = torch.device(sys.argv[1])
if device.type != "cuda" or not torch.cuda.is_available():
    sys.exit(f"bench/gpu.sh needs a CUDA device; {sys.argv[1]} is not available (torch {torch.__version__})")
print(f"# {sys.argv[1]}: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF

mkdir -p bench/results
OUT="bench/results/gpu-$(date -u +%Y%m%dT%H%MZ).txt"

run() {  # run <seconds> <script> [args...]: one benchmark with a time limit, so one hang can't eat the run
  local limit="$1"; shift
  echo
  echo "## $* (limit ${limit}s)"
  timeout "$limit" "$PY" "$@" || echo "!! $1 exited with status $? (see above)"
}

{
  echo "# bench/gpu.sh on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, precision $PRECISION"
  # Larger inputs than the CPU defaults: a GPU finishes the CPU sizes too fast to time them well.
  run 180 bench/embed.py --device "$DEVICE" --precision "$PRECISION" --images 512 --captions 4000 --repeats 3 --threads 8
  run 150 bench/rerank.py --device "$DEVICE" --precision "$PRECISION" --pairs 512 --images 64 --blip-batch 32 --repeats 3 --threads 8
  run 60 bench/reader.py --device "$DEVICE" --quick
  run 90 bench/store.py --device "$DEVICE" --sizes 10000 --sections write query batch
  run 240 bench/media.py --device "$DEVICE" --precision "$PRECISION" --clips 64 --videos 8 --video-seconds 8 --repeats 2 --threads 8
  # Late interaction: full-size ColQwen2 pages/s on the device (first run builds its random weights, ~2 min),
  # and the multivector store at 10k synthetic pages (CPU).
  run 420 bench/late.py --device "$DEVICE" --precision "$PRECISION" --embed-pages 16 --batch-size 8 --queries 30
} 2>&1 | tee "$OUT"
echo "results: $OUT"
