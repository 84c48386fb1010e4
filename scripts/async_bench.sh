#!/usr/bin/env bash
# make async-bench: every mode of experiments/async-modes.txt x seed on experiments/async-bench.yaml, one
# `fedtrain simulate` per cell into results/async/MODE/seed-K. Finished cells are skipped and interrupted ones
# resumed from their checkpoint. Select a subset with space-separated names: MODES, SEEDS (0 1 2).
set -euo pipefail
cd "$(dirname "$0")/.."
FEDTRAIN=${FEDTRAIN:-.build/release/fedtrain}
SEEDS=${SEEDS:-0 1 2}
selected() { [ -z "$2" ] || [[ " $2 " == *" $1 "* ]]; }
while read -r mode flags; do
  selected "$mode" "${MODES:-}" || continue
  for seed in $SEEDS; do
    out="results/async/$mode/seed-$seed"
    if [ -f "$out/summary.json" ]; then echo "$mode seed $seed: done"; continue; fi
    echo "$mode seed $seed"
    if [ -f "$out/checkpoint/checkpoint.json" ]; then
      "$FEDTRAIN" simulate --resume "$out" < /dev/null > "$out.log" 2>&1 || { tail -3 "$out.log"; exit 1; }
    else
      mkdir -p "$(dirname "$out")"
      # shellcheck disable=SC2086
      "$FEDTRAIN" simulate --config experiments/async-bench.yaml --seed "$seed" $flags --out "$out" < /dev/null > "$out.log" 2>&1 \
        || { tail -3 "$out.log"; exit 1; }
    fi
  done
done < <(grep -v '^#' experiments/async-modes.txt | grep -v '^[[:space:]]*$')
