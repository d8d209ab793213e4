#!/usr/bin/env bash
# Table 2 on one GPU without Ray (for a GPU machine where only torch is installed): DCGAN and
# DCGAN-SI at the S / M / L presets, 3 seeds, all 18 runs packed on the GPU as processes, every
# evaluation appended to $OUT/table2_progress.jsonl as it happens (a run cut short by the time
# limit still leaves its curve), then the step time of each width on the GPU.
# Where Ray is installed, `python studies/mnist3_table2.py --gpus-per-trial 0.125` runs the
# same grid through the study system, tracked in MLflow.
#   OUT=results STEPS=20000 EVERY=2500 LIMIT_S=420 bash benchmarks/gpu_table2.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results}; STEPS=${STEPS:-20000}; EVERY=${EVERY:-2500}; LIMIT_S=${LIMIT_S:-420}
DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-18}; PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
"$PYTHON" benchmarks/bench_gan_si_step.py --device "$DEVICE" --steps 30 \
    --widths 0.125 0.25 0.5 1 2 4 --json "$OUT/step_times_$DEVICE.json"
start=$(date +%s)
timeout "$LIMIT_S" "$PYTHON" benchmarks/compare_methods.py --methods gan gan_si --sizes S M L \
    --seeds 0 1 2 --device "$DEVICE" --workers "$WORKERS" --set data.name=mnist3 \
    --set data.source=mnist-5k --set "train.steps=$STEPS" --set "run.eval_every=$EVERY" \
    --progress "$OUT/table2_progress.jsonl" --json "$OUT/table2.json"
echo "table2 exit $? after $(( $(date +%s) - start )) s"
