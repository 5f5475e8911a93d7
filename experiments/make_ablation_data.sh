#!/usr/bin/env bash
# Pair sets for experiment=ablation_gamma and experiment=ablation_pairs, from one unfiltered rectify run:
#   bash experiments/make_ablation_data.sh                       # toy world -> data/toy_gamma*/, data/toy_n*/
# For a real model, pass rectify overrides (same problems, Oracle and policy as the main table), e.g.
#   bash experiments/make_ablation_data.sh model=hf model.path=Qwen/Qwen3-8B problems=dapo oracle=anthropic
# and point the experiments' data.path at the printed directories.
set -euo pipefail
cd "$(dirname "$0")/.."
# journal_dir: reuse the main run's samples and Oracle replies (data/toy/), so only the filter changes
python rectify.py gamma=1.0 out_dir=data/toy_all journal_dir=data/toy/journal "$@"
for g in 0.2 0.4 0.6 1.0; do
  python experiments/derive_pairs.py data/toy_all/pairs.jsonl --gamma "$g" --out "data/toy_gamma$g/pairs.jsonl"
done
for n in 250 500 1000; do
  python experiments/derive_pairs.py data/toy_all/pairs.jsonl --gamma 0.6 --n "$n" --out "data/toy_n$n/pairs.jsonl"
done
