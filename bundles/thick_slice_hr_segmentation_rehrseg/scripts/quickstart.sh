#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): plain self-SR network -> UASR model fine-tuned from it
# -> pseudo-HR training data (SR image, SR label, uncertainty) -> segmenter with LR and HR heads -> HR segmentations
# of three thick-slice volumes -> HR Dice/HD95 of the held-out test subjects against the thin-slice truth. The
# smallest networks (configs/tiny.json), 10 of the default data's 40 subjects and short schedules, so that it runs in
# a few minutes on a laptop CPU: it demonstrates the pipeline, not the accuracy (drop the overlay and the --epochs
# overrides for the configs' networks and schedules, and use --dataset_dir ../../data/Meningioma for all 40
# subjects; configs/quick.json is between).
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
demo_data=eval/demo_data  # 10 of the 40 subjects (6 train, 2 validation, 2 test), with their HR truth beside them
rm -rf "$demo_data" && mkdir -p "$demo_data"/Meningioma/{imagesTr,labelsTr} "$demo_data"/Meningioma_HR/{imagesHR,labelsHR}
for i in $(seq -f "%03g" 1 10); do
    cp "$data/Meningioma/imagesTr/MEN_${i}_0000.nii.gz" "$demo_data/Meningioma/imagesTr/"
    cp "$data/Meningioma/labelsTr/MEN_$i.nii.gz" "$demo_data/Meningioma/labelsTr/"
    cp "$data/Meningioma_HR/imagesHR/MEN_${i}_0000.nii.gz" "$demo_data/Meningioma_HR/imagesHR/"
    cp "$data/Meningioma_HR/labelsHR/MEN_$i.nii.gz" "$demo_data/Meningioma_HR/labelsHR/"
done
args=(--dataset_dir "$demo_data/Meningioma")
run --config_file "['configs/train.json','configs/train_sr.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/train_sr.json','configs/train_uasr.json',$tiny]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/pseudo_hr.json',$tiny]" "${args[@]}" --overwrite true
run --config_file "['configs/train.json',$tiny]" "${args[@]}" --epochs 8  # as many steps as 2 epochs of 24 subjects
run --config_file "['configs/inference.json',$tiny]" --dataset_dir "$demo_data/Meningioma/imagesTr" \
    --file_pattern "MEN_00[1-3]_0000.nii.gz" --overwrite true
run --config_file "['configs/inference.json','configs/evaluate.json',$tiny]" "${args[@]}"
flush
echo
echo "HR segmentations: $(pwd)/outputs/, HR Dice/HD95 per test subject: $(pwd)/eval/test_hr/"
