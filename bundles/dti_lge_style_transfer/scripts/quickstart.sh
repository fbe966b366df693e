#!/usr/bin/env bash
# requires: lge_mi_sr_segmentation
# Short end-to-end demo of this bundle, run from the bundle root by tools/quickstart.sh (or by hand:
# `PY=python DATA_ROOT=../../data BUNDLES_DIR=.. bash scripts/quickstart.sh`): the CycleGANSeg Segmentor ->
# CycleGANSeg -> evaluation -> a folder of DTI slices -> LGE style -> 512x512 MI masks through the trained
# SwinSSegNet of BUNDLES_DIR/lge_mi_sr_segmentation (the `requires:` line above makes tools/quickstart.sh run that
# bundle's demo first; it trains the network of that bundle's configs/quick.json, hence --sseg_overlays). The quick
# benchmark's generators and discriminators (configs/quick.json: ngf 32, 6 blocks, ndf 32) and short schedules; drop
# the quick.json overlays and the --epochs overrides for the configs' defaults. Re-running resumes from models/.
set -euo pipefail
py=${PY:-python}
data=${DATA_ROOT:-../../data}
sseg=${BUNDLES_DIR:?set BUNDLES_DIR to the folder holding the trained lge_mi_sr_segmentation bundle}/lge_mi_sr_segmentation
steps=()  # queued `monai.bundle run` argument lists, run in one process by flush (one interpreter start-up)
run() { steps+=("$(printf '%q ' "$@")"); }
flush() { [ ${#steps[@]} -eq 0 ] || "$py" -m common.bundle_steps "${steps[@]}"; steps=(); }
"$py" -m scripts.prepare_dti_folder --dataset_dir "$data/DTI_LGE_MI" --out "$data/DTI_LGE_MI_dti_test" \
    --split test --overwrite True  # the DTI test slices to translate (from the data alone)
quick=configs/quick.json  # layered over every step that builds the translator: inference must build the trained one
run --config_file "['configs/train.json','configs/train_segmentor.json']" --data_root "$data" \
    --epochs 40 --val_interval 5 --lr 0.003
run --config_file "['configs/train.json','$quick']" --data_root "$data" --epochs 6
run --config_file "['configs/train.json','$quick','configs/evaluate.json']" --data_root "$data"
run --config_file "['configs/inference.json','$quick']" --dataset_dir "$data/DTI_LGE_MI_dti_test" --overwrite true
run --config_file "['configs/inference.json','$quick','configs/pipeline.json']" --dataset_dir "$data/DTI_LGE_MI_dti_test" \
    --overwrite true --sseg_bundle_root "$sseg" --sseg_overlays "['configs/quick.json']"
flush
echo
echo "LGE-style images and DTI pipeline masks: $(pwd)/outputs/, translation metrics and overlays: $(pwd)/eval/"
