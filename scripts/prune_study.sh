#!/usr/bin/env bash
# Issue 11, item 4: does pruning beat distilling a fresh student at equal cost (CPU)?
# Every run below distils from the bundled teacher (drumsep-demo-teacher, c = 32) for the same 300
# optimizer steps on the same rendered crops (batch 4, 1.5-s crops); only the starting point differs:
#   prune-taylor-{0.25,0.5,0.75}    iterative Taylor pruning, 3 steps, STEPS/3 distillation steps after each
#   prune-taylor-oneshot-0.5        one Taylor pruning step to c = 16, then STEPS distillation steps
#   distill-scratch16               a c = 16 student from random weights, STEPS distillation steps
# STEPS = 120 by default: ~4.5 s per step on 2 cores, so ~10 minutes per run (session 9).
# Resumable: a finished run (its checkpoint exists) is skipped, an interrupted one resumes from its
# last Lightning checkpoint. Then score them all on the 21 held-out clips:
#   python -m eval.pareto configs/eval/prune_study.yaml
# Run in the background at low priority: nohup nice -n 19 bash scripts/prune_study.sh > logs/prune_study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-120}
CROP=65024

run() {  # run <checkpoint that marks it done> <command...>
    local done=$1; shift
    if [[ -f $done ]]; then echo "== done already: $done"; return; fi
    echo "== $(date -u +%H:%M:%S) $*"
    local start=$SECONDS
    "$@"
    echo "== $(date -u +%H:%M:%S) finished in $((SECONDS - start)) s: $done"
}

for ratio in 0.5 0.25 0.75; do
    run runs/prune-taylor-$ratio/pruned.ckpt \
        python -m compress.prune +config=taylor_iterative prune.ratio=$ratio prune.finetune_steps=$((STEPS / 3)) distill.crop_samples=$CROP logger=csv
    if [[ $ratio == 0.5 ]]; then
        run runs/prune-taylor-oneshot-0.5/pruned.ckpt \
            python -m compress.prune +config=taylor_iterative prune.ratio=0.5 prune.iterative_steps=1 \
            prune.finetune_steps=$STEPS distill.crop_samples=$CROP run_name=prune-taylor-oneshot-0.5 logger=csv
        run runs/distill-scratch16/export/distill-scratch16.ckpt \
            python -m train.distill student.name=scratch16 +student.audio.chunk_size=$CROP trainer.max_steps=$STEPS \
                logger=csv export.evaluate=false
    fi
done
