#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): plain self-SR network -> UASR model fine-tuned from it
# -> pseudo-HR training data (SR image, SR label, uncertainty) -> segmenter with LR and HR heads -> HR segmentations
# of three thick-slice volumes -> HR Dice/HD95 of the held-out test subjects against the thin-slice truth. The
# smallest networks (configs/tiny.json) and two epochs per stage, so that it runs in a few minutes on a laptop CPU:
# it demonstrates the pipeline, not the accuracy (drop the overlay and the --epochs overrides for the configs'
# networks and schedules; configs/quick.json is between).
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
if [ ! -d "$data/Meningioma" ]; then  # a data folder written before this bundle existed
    (cd "${BUNDLES_DIR:-..}/.." && "$py" -m tools.make_data --out "$data" --datasets Meningioma)
fi
tiny="'configs/tiny.json'"
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
args=(--dataset_dir "$data/Meningioma")
run --config_file "['configs/train.json','configs/train_sr.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/train_sr.json','configs/train_uasr.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/pseudo_hr.json',$tiny]" "${args[@]}" --overwrite true
run --config_file "['configs/train.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/inference.json',$tiny]" --dataset_dir "$data/Meningioma/imagesTr" \
    --file_pattern "MEN_00[1-3]_0000.nii.gz" --overwrite true
run --config_file "['configs/inference.json','configs/evaluate.json',$tiny]" "${args[@]}"
flush
echo
echo "HR segmentations: $(pwd)/outputs/, HR Dice/HD95 per test subject: $(pwd)/eval/test_hr/"
