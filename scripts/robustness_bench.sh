#!/usr/bin/env bash
# make robustness-bench: every attack x defense x partition x seed of experiments/robustness-*.txt, one
# `fedtrain simulate` per cell into results/robustness/PARTITION/ATTACK/DEFENSE/seed-K. Finished cells are
# skipped and interrupted ones resumed from their checkpoint, so it can be stopped and restarted.
# Select a subset with space-separated names: ATTACKS, DEFENSES, PARTITIONS (dirichlet-0.5 iid), SEEDS (0 1 2).
set -euo pipefail
cd "$(dirname "$0")/.."
FEDTRAIN=${FEDTRAIN:-.build/release/fedtrain}
PARTITIONS=${PARTITIONS:-dirichlet-0.5 iid}
SEEDS=${SEEDS:-0}
lines() { grep -v '^#' "$1" | grep -v '^[[:space:]]*$'; }
selected() { [ -z "$2" ] || [[ " $2 " == *" $1 "* ]]; }
for partition in $PARTITIONS; do
  [ -f "experiments/robustness-$partition.yaml" ] || { echo "robustness-bench: no experiments/robustness-$partition.yaml" >&2; exit 2; }
  while read -r attack attack_flags; do
    selected "$attack" "${ATTACKS:-}" || continue
    while read -r defense defense_flags; do
      selected "$defense" "${DEFENSES:-}" || continue
      for seed in $SEEDS; do
        out="results/robustness/$partition/$attack/$defense/seed-$seed"
        if [ -f "$out/summary.json" ]; then echo "$partition $attack $defense seed $seed: done"; continue; fi
        echo "$partition $attack $defense seed $seed"
        if [ -f "$out/checkpoint/checkpoint.json" ]; then
          "$FEDTRAIN" simulate --resume "$out" < /dev/null > "$out.log" 2>&1 || { tail -3 "$out.log"; exit 1; }
        else
          mkdir -p "$(dirname "$out")"
          # shellcheck disable=SC2086
          "$FEDTRAIN" simulate --config "experiments/robustness-$partition.yaml" --seed "$seed" $attack_flags $defense_flags \
            --out "$out" < /dev/null > "$out.log" 2>&1 || { tail -3 "$out.log"; exit 1; }
        fi
      done
    done < <(lines experiments/robustness-defenses.txt)
  done < <(lines experiments/robustness-attacks.txt)
done
