#!/bin/bash
cd /work/main
for k in 1 0; do
  echo "start keep=$k $(date +%T)" >> /tmp/ab/progress
  DRUMSEP_KEEP_FREED_MEMORY=$k python -m eval.speed --config separation/models/drumsep_5stems.yaml --seconds 30 --num-overlap 4 --backends onnx-winograd --threads 2 --out /tmp/ab/keep${k}_r1.json > /tmp/ab/keep${k}_r1.log 2>&1
  echo "done keep=$k $(date +%T)" >> /tmp/ab/progress
done
