#!/usr/bin/env bash
# Every post-training run of one base of the study (PROTOCOL.md, "Runs"), then its table:
#   bash experiments/study/run_base.sh b0 assets/toy-base data/toy
#   bash experiments/study/run_base.sh v0 assets/study-v0 data/study/v0     (after make_bases.sh v0)
# The learning-rate grids at seed 0, a grid extended past an edge its method chose, then seeds 1 and 2 at each
# chosen rate: experiments/study/analyze.py --next says which jobs are still to make, one train.py run each, under
# multirun/study/<base>/. A rerun (after a kill, say) makes only the jobs that wrote no metrics.json.
# The data, when missing: python rectify.py model.path=<model> out_dir=<data>.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run_base.sh NAME MODEL DATA}; model=${2:?}; data=${3:?}
root=multirun/study/$name
[ -f "$data/COMPLETE" ] || python rectify.py "model.path=$model" "out_dir=$data"
for round in 1 2 3 4; do  # grids, extensions, seeds (a round more for a job that was killed)
  cmds=$(python experiments/study/analyze.py "$root" --next --model "$model" --toy-data "$data")
  [ -n "$cmds" ] || break
  while read -r cmd; do
    echo "+ $cmd"; eval "$cmd" < /dev/null
  done <<< "$cmds"
done
python experiments/study/analyze.py "$root" --name "$name" --json "$root/analysis.json" | tee "$root/analysis.md"
