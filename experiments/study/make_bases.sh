#!/usr/bin/env bash
# Rebuilds a base of experiments/study (PROTOCOL.md, "Bases") in B0's four-stage schedule:
#   bash experiments/study/make_bases.sh v0     # the slips world, 0.8M -> assets/study-v0
#   bash experiments/study/make_bases.sh b1     # the larger clean base, 3.2M -> assets/study-b1
#   bash experiments/study/make_bases.sh c0     # V0's control: its schedule without slips, 0.8M -> assets/study-c0
# Stages go to data/study/stages/<base>/; each stage continues from the one before (its pretrain.json lists them).
# A rerun after a kill skips the stages already finished (pretrain.json is the last file a stage writes).
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:?usage: make_bases.sh v0|c0|b1}
case "$base" in
  v0) shape=(); world=(--slip-fraction 0.1) ;;
  c0) shape=(); world=() ;;
  b1) shape=(--hidden-size 256 --num-layers 4 --num-heads 8 --num-kv-heads 4 --intermediate-size 768); world=() ;;
  *) echo "error: unknown base '$base': v0, c0 or b1" >&2; exit 2 ;;
esac
stages=data/study/stages/$base
mkdir -p "$stages"
stage() {  # stage NAME ARGS...: one pretraining run, unless it has finished before
  [ -f "$stages/$1/pretrain.json" ] && { echo "stage $1 done before: $stages/$1"; return; }
  local out=$stages/$1; shift
  python -m spot.toy.pretrain --out "$out" "$@"
}
stage s1 --steps 800 --lr 3e-3 "${shape[@]}" "${world[@]}"
stage s2 --init "$stages/s1" --steps 400 --lr 1.5e-3 "${world[@]}"
stage s3 --init "$stages/s2" --steps 500 --lr 1e-3 "${world[@]}"
stage s4 --init "$stages/s3" --steps 150 --lr 1e-3 --prior-fraction 0.7 "${world[@]}"
rm -rf "assets/study-$base.tmp" && cp -r "$stages/s4" "assets/study-$base.tmp"
rm -rf "assets/study-$base" && mv "assets/study-$base.tmp" "assets/study-$base"
echo "base written: assets/study-$base"
