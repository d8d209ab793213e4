#!/usr/bin/env bash
# How low KL goes at the XL (textbook) width on one GPU: DCGAN, DCGAN-SI (lam 1) and DCGAN-SI
# (lam 0.1), seeds 0-2, with the learning rate decayed by cosine to 1 % over the run, all nine
# runs packed on the GPU as processes; evaluations appended to $OUT/xl_progress.jsonl.
#   OUT=results STEPS=20000 EVERY=4000 LIMIT_S=270 bash experiments/gpu_xl_decay.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results}; STEPS=${STEPS:-20000}; EVERY=${EVERY:-4000}; LIMIT_S=${LIMIT_S:-270}
DEVICE=${DEVICE:-cuda}; PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
common=(--seeds 0 1 2 --widths 4 --device "$DEVICE" --set data.name=mnist3
        --set data.source=mnist-5k --set "train.steps=$STEPS" --set "run.eval_every=$EVERY"
        --set train.lr_schedule=cosine --set train.lr_final_ratio=0.01)
start=$(date +%s)
timeout "$LIMIT_S" "$PYTHON" experiments/compare_methods.py "${common[@]}" --methods gan gan_si \
    --workers 6 --progress "$OUT/xl_progress.jsonl" > "$OUT/xl_lam1.txt" 2>&1 &
timeout "$LIMIT_S" "$PYTHON" experiments/compare_methods.py "${common[@]}" --methods gan_si \
    --set loss.lam=0.1 --workers 3 --progress "$OUT/xl_lam0.1_progress.jsonl" \
    > "$OUT/xl_lam0.1.txt" 2>&1 &
wait
echo "done after $(( $(date +%s) - start )) s"
tail -n 6 "$OUT"/xl_*.txt
wc -l "$OUT"/*progress.jsonl
