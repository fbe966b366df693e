#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): heart localiser -> MUNIT translator -> synthetic
# labelled LGE -> the four cascade stages -> segmentation of a folder of LGE stacks -> evaluation on the LGE
# volumes that have labels. The smallest networks (configs/tiny.json: 2.5 mm, 64x64 crops) and two or three epochs
# per stage, so that it runs in a few minutes on a laptop CPU: it demonstrates the pipeline, not the accuracy (drop
# the overlay and the --epochs overrides for the configs' networks and schedules; configs/quick.json is between).
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
quick="'configs/tiny.json'"
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
args=(--dataset_dir "$data/MSCMRSeg")
run --config_file "['configs/train.json','configs/train_localiser.json',$quick]" "${args[@]}" --epochs 3
run --config_file "['configs/train.json','configs/train_translator.json',$quick]" "${args[@]}" --epochs 2
run --config_file "['configs/train.json','configs/generate.json',$quick]" "${args[@]}" --overwrite true --num_styles 2
for stage in unet1_bssfp unet1_ft unet2_bssfp unet2_ft; do
    run --config_file "['configs/train.json',$quick]" "${args[@]}" --stage "$stage" --epochs 2
done
run --config_file "['configs/inference.json',$quick]" "${args[@]}" --overwrite true
run --config_file "['configs/inference.json','configs/evaluate.json',$quick]" "${args[@]}"
flush
echo
echo "LGE label maps: $(pwd)/outputs/, Dice/ASD per structure: $(pwd)/eval/"
