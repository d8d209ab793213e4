#!/usr/bin/env bash
# The Stacked-MNIST width grid at a long budget on one GPU machine where only torch is
# installed (no Ray, no MLflow): DCGAN and DCGAN-SI, 3 seeds, the narrow widths as CPU
# processes and the wide ones packed on the GPU, all at once; every evaluation is appended to
# $OUT/*_progress.jsonl as it happens, so runs cut short by LIMIT_S still leave their curves.
# First the step time of each width on the GPU. Where Ray is installed,
# `python studies/mnist3_table2.py --gpus-per-trial 0.125` runs Table 2 through the study
# system, tracked in MLflow.
#   OUT=results STEPS=20000 EVERY=2000 LIMIT_S=450 bash experiments/gpu_table2.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results}; STEPS=${STEPS:-20000}; EVERY=${EVERY:-2000}; LIMIT_S=${LIMIT_S:-450}
DEVICE=${DEVICE:-cuda}; PYTHON=${PYTHON:-python3}
CPU_WIDTHS=${CPU_WIDTHS:-0.125 0.25 0.5}; GPU_WIDTHS=${GPU_WIDTHS:-1 2 4}
CPU_WORKERS=${CPU_WORKERS:-9}; GPU_WORKERS=${GPU_WORKERS:-18}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '', 'cpus', __import__('os').cpu_count())"
"$PYTHON" benchmarks/bench_gan_si_step.py --device "$DEVICE" --steps 30 \
    --widths 0.125 0.25 0.5 1 2 4 --json "$OUT/step_times_$DEVICE.json"
common=(--methods gan gan_si --seeds 0 1 2 --set data.name=mnist3 --set data.source=mnist-5k
        --set "train.steps=$STEPS" --set "run.eval_every=$EVERY")
start=$(date +%s)
# shellcheck disable=SC2086
timeout "$LIMIT_S" "$PYTHON" experiments/compare_methods.py "${common[@]}" --widths $CPU_WIDTHS \
    --device cpu --workers "$CPU_WORKERS" --progress "$OUT/cpu_progress.jsonl" \
    --json "$OUT/cpu_runs.json" > "$OUT/cpu_table.txt" 2>&1 &
# shellcheck disable=SC2086
timeout "$LIMIT_S" "$PYTHON" experiments/compare_methods.py "${common[@]}" --widths $GPU_WIDTHS \
    --device "$DEVICE" --workers "$GPU_WORKERS" --progress "$OUT/gpu_progress.jsonl" \
    --json "$OUT/gpu_runs.json" > "$OUT/gpu_table.txt" 2>&1 &
wait
echo "grid done after $(( $(date +%s) - start )) s"
tail -n 12 "$OUT/cpu_table.txt" "$OUT/gpu_table.txt"
wc -l "$OUT"/*_progress.jsonl
