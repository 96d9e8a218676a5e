#!/usr/bin/env bash
# One lent-GPU session (device tool): two teachers side by side on one GPU, mse_stft against
# snr_floor, on clips rendered in memory from the packed kits (.kits, made by
# `python -m drumdata.pack_kits --out .kits`), then the full-size GPU speed sweep.
# Wheels for what the GPU image lacks (soundfile, cffi, pycparser, soxr) travel in .whl.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$OUT/log.txt"
common="--minutes ${MIN:-6} --batch-size ${BATCH:-16} --bank-hours ${HOURS:-3} --clip-seconds 8 --kits-dir .kits
        --workers ${WORKERS:-7} --eval-every ${EVERY:-40} --val-clips ${VAL:-64} ${EXTRA:-}"
for loss in mse_stft snr_floor; do
  $PY -m train.onthefly_teacher --out /tmp/state_$loss --export-dir "$OUT/$loss" --loss $loss $common 2>&1 \
    | sed -u "s/^/[$loss] /" >> "$OUT/log.txt" &
done
wait
timeout ${SPEED_TIMEOUT:-90} $PY -m eval.timing.gpu_speed --seconds 210 --out "$OUT/gpu_speed.json" >> "$OUT/log.txt" 2>&1
tail -n 30 "$OUT/log.txt"
