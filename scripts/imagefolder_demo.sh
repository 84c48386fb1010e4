#!/usr/bin/env bash
# make imagefolder-demo: Fashion-MNIST written out as a folder of PNGs (fedtrain export-images), then
# the same training run from the IDX files and from the folder. PNG is lossless and the folder keeps
# the data set's order and normalization, so the two runs must end with the same model, bit for bit.
# Writes results/imagefolder-demo/{idx,folder}.json and the folder itself (deleted at the end unless
# KEEP=1). EPOCHS (default 2) sets the run length.
set -euo pipefail
cd "$(dirname "$0")/.."
FEDTRAIN=${FEDTRAIN:-.build/release/fedtrain}
EPOCHS=${EPOCHS:-2}
out=results/imagefolder-demo
rm -rf "$out" && mkdir -p "$out"
"$FEDTRAIN" export-images --out "$out/fashion-mnist-png"
for source in idx folder; do
  data=()
  [ "$source" = folder ] && data=(--data "folder:$out/fashion-mnist-png")
  echo "training from $source"
  "$FEDTRAIN" train "${data[@]}" --epochs "$EPOCHS" --threads 2 --summary "$out/$source.json" --save "$out/$source.safetensors" \
    2>&1 | grep -E "^(loaded|done)"
done
accuracy() { sed -n 's/.*"test_accuracy" : \([0-9.]*\).*/\1/p' "$1"; }
a=$(accuracy "$out/idx.json"); b=$(accuracy "$out/folder.json")
ha=$(sha256sum "$out/idx.safetensors" | cut -c1-16); hb=$(sha256sum "$out/folder.safetensors" | cut -c1-16)
echo "test accuracy: IDX $a, PNG folder $b; model SHA-256: IDX $ha..., PNG folder $hb..."
[ "${KEEP:-0}" = 1 ] || rm -rf "$out/fashion-mnist-png"
if [ "$a" != "$b" ] || [ "$ha" != "$hb" ]; then echo "make imagefolder-demo: the runs differ" >&2; exit 1; fi
echo "identical"
