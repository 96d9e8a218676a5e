#!/usr/bin/env bash
# One lent-GPU session (device tool): teachers trained side by side on one GPU, on clips rendered
# in memory from the packed kits (.kits, made by `python -m drumdata.pack_kits --out .kits`), then
# the full-size GPU speed sweep. Each run is a NAME and its own train.onthefly_teacher flags:
#   scripts/gpu_teacher_session.sh NAME "FLAGS" [NAME "FLAGS" ...]
# With no arguments: the first session's pair, mse_stft against snr_floor from scratch.
# Env: KITS (default .kits), MIN BATCH HOURS WORKERS EVERY VAL (training), SPEED_TIMEOUT (0 = no speed sweep) and
# SPEED_SETTINGS (eval.timing.gpu_speed --settings, e.g. torch:bf16:8,compile:bf16:8).
# KITS=.gpukits with `tar -xf .gpucarry/kits.tar` first: the packed kits made small enough to carry by
# `python -m drumdata.carry_kits` (identical samples stored once, as links).
# Each run comes back as one NAME.tar (best.ckpt/.yaml, curve.json): the device returns at most 8 files.
# Wheels for what the GPU image lacks (soundfile, cffi, pycparser, soxr) travel in .whl.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then  # NO_WHEELS=1: a local dry run
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
# the GPU image has no hydrogen-data: --grooves songs|mixed read the songs pack_kits copied
KITS=${KITS:-.kits}  # a folder of packed kits (a smaller, deduplicated copy fits the 64-MiB carry)
[ -d "$KITS/demo_songs" ] && export DRUMSEP_SONGS_DIR=$PWD/$KITS/demo_songs
PY=${PY:-python3}
[ $# -eq 0 ] && set -- mse_stft "--loss mse_stft" snr_floor "--loss snr_floor"
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$OUT/log.txt"
common="--minutes ${MIN:-6} --batch-size ${BATCH:-16} --bank-hours ${HOURS:-3} --clip-seconds 8 --kits-dir $KITS
        --workers ${WORKERS:-7} --eval-every ${EVERY:-40} --val-clips ${VAL:-64}"
set -f  # the flags hold `*` (loss weights): no globbing
while [ $# -ge 2 ]; do
  name=$1 flags=$2; shift 2
  # shellcheck disable=SC2086  # the flags are meant to split
  $PY -m train.onthefly_teacher --out "/tmp/state_$name" --export-dir "$OUT/$name" $common $flags 2>&1 \
    | sed -u "s/^/[$name] /" >> "$OUT/log.txt" &
done
wait
set +f
for dir in "$OUT"/*/; do
  name=$(basename "$dir"); tar -cf "$OUT/$name.tar" -C "$OUT" "$name" && rm -r "$dir"
done
if [ "${SPEED_TIMEOUT:-90}" -gt 0 ]; then
  timeout "${SPEED_TIMEOUT:-90}" $PY -m eval.timing.gpu_speed --seconds 210 ${SPEED_SETTINGS:+--settings "$SPEED_SETTINGS"} --out "$OUT/gpu_speed.json" >> "$OUT/log.txt" 2>&1
fi
tail -n 40 "$OUT/log.txt"
