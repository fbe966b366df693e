#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): phase I (Pri, coarse tissue mask) -> phase II (Sys,
# LGE-equivalent image conditioned on it) -> phase III (Seg, final 4-class segmentation conditioned on the synthesis)
# -> LGE-equivalent images, segmentations and the clinical CSV of three cine stacks -> Table 1/2 scores of the
# held-out test patients with Bland-Altman plots. The first 12 patients, the smallest networks (configs/tiny.json)
# and one epoch per phase, so that it runs in about two minutes on a laptop CPU: it demonstrates the pipeline, not
# the accuracy (drop the overlay, the copy and the --epochs overrides for the configs' networks, data and schedules;
# configs/quick.json is between).
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
if [ ! -d "$data/CineLGE" ]; then  # a data folder written before this bundle existed
    (cd "${BUNDLES_DIR:-..}/.." && "$py" -m tools.make_data --out "$data" --datasets CineLGE)
fi
tiny="'configs/tiny.json'"
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
# the demo trains on the first 12 patients of the default data (copied), so that it takes about two minutes
demo_data=eval/demo_data/CineLGE
rm -rf "$demo_data" && mkdir -p "$demo_data"
for i in $(seq -f "%03g" 1 12); do cp -r "$data/CineLGE/case$i" "$demo_data/"; done
inputs=outputs/demo_cines  # three cine stacks to run inference on
mkdir -p "$inputs"
for case in case001 case002 case003; do cp "$data/CineLGE/$case/${case}_cine.nii.gz" "$inputs/"; done
args=(--dataset_dir "$demo_data" --epochs 1)
run --config_file "['configs/train.json',$tiny]" "${args[@]}"
run --config_file "['configs/train.json','configs/train_sys.json',$tiny]" "${args[@]}"
run --config_file "['configs/train.json','configs/train_seg.json',$tiny]" "${args[@]}"
run --config_file "['configs/inference.json',$tiny]" --dataset_dir "$inputs" --overwrite true
run --config_file "['configs/inference.json','configs/evaluate.json',$tiny]" --dataset_dir "$demo_data" \
    --overwrite true
flush
echo
echo "LGE-equivalent images, segmentations and AHA segment maps: $(pwd)/outputs/ (clinical_cases.csv, clinical_segments.csv);"
echo "test scores: $(pwd)/eval/test/ (summary.json, cases.csv, Bland-Altman PNGs)"
