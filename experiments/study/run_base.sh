#!/usr/bin/env bash
# Every post-training run of one base of the study (PROTOCOL.md, "Runs"), then its table:
#   bash experiments/study/run_base.sh b0 assets/toy-base data/toy
#   bash experiments/study/run_base.sh v0 assets/study-v0 data/study/v0     (after make_bases.sh v0)
# The learning-rate grids at seed 0, a grid extended past an edge its method chose, then seeds 1 and 2 at each
# chosen rate: experiments/study/analyze.py --next says which jobs are still to make, one train.py run each.
# A job runs under multirun/study/<base>/ and leaves its metrics.json and train_log.jsonl in the study's record,
# experiments/study/<base>/runs/ (kept in git). A rerun, after a kill or in a fresh checkout, makes only the jobs
# the record lacks. METHODS=dpo,bco runs only those (two streams at once, one core each).
# The data, when missing: python rectify.py model.path=<model> out_dir=<data>.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run_base.sh NAME MODEL DATA}; model=${2:?}; data=${3:?}
record=experiments/study/$name/runs; work=multirun/study/$name
methods=${METHODS:-sft,rft,sft_plus,dpo,bce,bco}
[ -f "$data/COMPLETE" ] || python rectify.py "model.path=$model" "out_dir=$data"
for round in 1 2 3 4; do  # grids, extensions, seeds (a round more for a job that was killed)
  cmds=$(python experiments/study/analyze.py "$record" --next --work "$work" --model "$model" --toy-data "$data" \
         --methods "$methods")
  [ -n "$cmds" ] || break
  while read -r cmd; do
    echo "+ $cmd"; eval "$cmd" < /dev/null
  done <<< "$cmds"
done
python experiments/study/analyze.py "$record" --name "$name" --json "experiments/study/$name/analysis.json" \
  | tee "experiments/study/$name/analysis.md"
