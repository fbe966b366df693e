#!/usr/bin/env bash
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data bash scripts/quickstart.sh`): U-SSL pre-training -> SwinSSegNet training ->
# 8x MI segmentation of a folder of 64x64 LGE slices -> evaluation. The quick benchmark's networks (configs/quick.json:
# feature size 24, depths 2/2/2/2) and short schedules so that it runs in minutes on a laptop CPU; drop the quick.json
# overlay and the --epochs overrides for the configs' defaults. Re-running resumes from models/.
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
"$py" -m scripts.prepare_lowres --dataset_dir "$data/DTI_LGE_MI" --out "$data/DTI_LGE_MI_lowres" --split test \
    --overwrite True  # the 64x64 test slices to segment (from the data alone)
quick=configs/quick.json  # layered over every step: the trained network must match the one inference builds
run --config_file "['configs/pretrain.json','$quick']" --data_root "$data" --epochs 1
run --config_file "['configs/train.json','$quick']" --dataset_dir "$data/DTI_LGE_MI" --epochs 20 --val_interval 5
run --config_file "['configs/inference.json','$quick']" --dataset_dir "$data/DTI_LGE_MI_lowres" --overwrite true
run --config_file "['configs/train.json','$quick','configs/evaluate.json']" --dataset_dir "$data/DTI_LGE_MI"
flush
echo
echo "SwinSSegNet masks: $(pwd)/outputs/, its metrics and overlays: $(pwd)/eval/"
