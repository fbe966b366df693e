#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): generative prior (GAN) -> its latent centroids ->
# TransMRSR x4 through-plane SR training -> thick-slice versions of the held-out test subject -> SR volumes ->
# PSNR/SSIM in the head mask against the thin-slice truth. The smallest networks (configs/tiny.json: 32x32 slices)
# and two epochs per stage, so that it runs in a few minutes on a laptop CPU: it demonstrates the pipeline, not the
# accuracy (drop the overlay and the --epochs overrides for the configs' networks and schedules; configs/quick.json
# is between).
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
tiny="'configs/tiny.json'"
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
echo; echo "=== thick-slice (x4) versions of the test subjects (from the data alone)"
"$py" -m scripts.prepare_lowres --dataset_dir "$data/IXI" --out "$data/IXI_thick" --scale 4 --overwrite True
args=(--dataset_dir "$data/IXI")
run --config_file "['configs/train.json','configs/train_prior.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/centroids.json',$tiny]" "${args[@]}" --overwrite true
run --config_file "['configs/train.json',$tiny]" "${args[@]}" --epochs 2 --val_interval 1
run --config_file "['configs/inference.json',$tiny]" --dataset_dir "$data/IXI_thick/x4" --overwrite true
run --config_file "['configs/inference.json','configs/evaluate.json',$tiny]" --dataset_dir "$data/IXI_thick/x4"
flush
echo
echo "SR volumes: $(pwd)/outputs/, PSNR/SSIM per volume: $(pwd)/eval/x4/"
