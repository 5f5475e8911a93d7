#!/usr/bin/env bash
# Runs of the toy study made again, or added, after the protocol's runs (PROTOCOL.md, 2026-12-06 section):
#   bash experiments/study/rerun.sh b0      # B0's DPO and BCO at 1e-6, seeds 0-2: their per-item records
#   bash experiments/study/rerun.sh b1path  # B1's KL path: DPO, BCE, BCO, SFT+ at 3e-5 and 5e-5, seeds 0-2,
#                                           # evaluated every 16 steps during training (eval_log.jsonl)
# A job runs in multirun/study/<set>/<job> and leaves metrics.json (per-item scores one line a suite:
# compact.py), train_log.jsonl (and eval_log.jsonl) in experiments/study/<set>/<job> (kept in git), moved into
# place whole; a rerun after a kill, or in a fresh checkout, makes only the jobs that left no record. Jobs are
# ordered seed-major so that a partial set is even.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
set_name=${1:?usage: rerun.sh b0|b1path}
ev='eval=[toy,toy_val,toy_ood_names,toy_ood_long]'
case "$set_name" in
  b0) model=assets/toy-base; data=data/toy; extra=(); kept=(metrics.json train_log.jsonl)
      jobs=(); for s in 0 1 2; do for m in dpo bco; do jobs+=("$m:1e-06:$s"); done; done ;;
  b1path) model=assets/study-b1; data=data/study/b1; kept=(metrics.json train_log.jsonl eval_log.jsonl)
      ev='eval=[toy_curves,toy_val,toy_ood_names,toy_ood_long]'; extra=("eval.callbacks.0.every_n_steps=16")
      jobs=(); for s in 0 1 2; do for lr in 3e-05 5e-05; do for m in dpo bce bco sft_plus; do
        jobs+=("$m:$lr:$s"); done; done; done ;;
  *) echo "error: unknown set '$set_name': b0 or b1path" >&2; exit 2 ;;
esac
[ -f "$data/COMPLETE" ] || python rectify.py "model.path=$model" "out_dir=$data"
record=experiments/study/$set_name; work=multirun/study/$set_name
mkdir -p "$work"
for j in "${jobs[@]}"; do
  IFS=: read -r m lr s <<< "$j"
  name=${m}_lr${lr}_s${s}; out=$work/$name; rec=$record/$name
  [ -f "$rec/metrics.json" ] && continue
  knob=pref_lr; [ "$m" = sft_plus ] && knob=sft_lr
  echo "+ $name ($(date +%H:%M:%S))"
  rm -rf "$out"
  python train.py "method=$m" "$knob=$lr" "seed=$s" "$ev" "${extra[@]}" logger=csv "model.path=$model" \
    "toy_data=$data" experiment_name=study "hydra.run.dir=$out" < /dev/null > "$out.log" 2>&1 || {
    echo "  failed: see $out.log"; continue; }
  rm -rf "$rec.tmp" && mkdir -p "$rec.tmp"
  for k in "${kept[@]}"; do cp "$out/$k" "$rec.tmp/"; done
  python experiments/study/compact.py "$out/metrics.json" "$rec.tmp/metrics.json"  # per-item scores, one line a suite
  mv "$rec.tmp" "$rec"
done
echo "done: $record"
