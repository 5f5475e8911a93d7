#!/usr/bin/env bash
# Every post-training run of one base of the study (PROTOCOL.md, "Runs"), then its table:
#   bash experiments/study/run_base.sh b0 assets/toy-base data/toy
#   bash experiments/study/run_base.sh v0 assets/study-v0 data/study/v0     (after make_bases.sh v0)
# The learning-rate grids at seed 0, a grid extended past an edge its method chose, then seeds 1 and 2 at each
# chosen rate (experiments/study/analyze.py --next says which). Sweeps go to multirun/study/<base>/; a rerun
# skips the sweeps already complete. The data: python rectify.py model.path=<model> out_dir=<data>.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run_base.sh NAME MODEL DATA}; model=${2:?}; data=${3:?}
root=multirun/study/$name
ev='eval=[toy,toy_val,toy_ood_names,toy_ood_long]'
common=("$ev" logger=csv "model.path=$model" "toy_data=$data" experiment_name=study)
[ -f "$data/pairs.jsonl" ] || python rectify.py "model.path=$model" "out_dir=$data"
sweep() {  # dir, overrides...: skipped when every job of it wrote metrics.json
  local dir=$1; shift
  if [ -f "$dir/multirun.yaml" ] && [ "$(ls "$dir"/*/metrics.json 2>/dev/null | wc -l)" -ge "$(ls -d "$dir"/*/ | wc -l)" ]; then
    return
  fi
  python train.py -m "$@" "${common[@]}" "hydra.sweep.dir=$dir"
}
sweep "$root/grid_pref" method=dpo,bce,bco pref_lr=1e-6,1e-5,1e-4,1e-3
sweep "$root/grid_sft" method=sft,rft,sft_plus sft_lr=5e-5,5e-4,5e-3
for round in 1 2; do  # extensions first, then seeds
  python experiments/study/analyze.py "$root" --next --toy-data "$data" | while read -r cmd; do
    echo "+ $cmd"; eval "$cmd" < /dev/null
  done
done
python experiments/study/analyze.py "$root" --name "$name" --json "$root/analysis.json" | tee "$root/analysis.md"
