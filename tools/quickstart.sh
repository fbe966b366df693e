#!/usr/bin/env bash
# Set up a virtual environment, write the default data and run the main job end to end:
# U-SSL pre-training -> SwinSSegNet training -> 8x MI segmentation of a folder of 64x64 LGE slices -> evaluation,
# then the CycleGANSeg Segmentor -> CycleGANSeg -> DTI folder -> 512x512 MI masks pipeline.
# Re-running resumes from the checkpoints under bundles/*/models/ (delete that folder to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# the same set-up as CI (.ci/run): torch, this project with its test extra, MONAI Label; only when .venv is missing
# (run `bash tools/install.sh` yourself to complete an older .venv: it installs only what is missing)
[ -x .venv/bin/python ] || bash tools/install.sh
py=$root/.venv/bin/python
[ -d data/DTI_LGE_MI ] || $py -m tools.make_data --out data

sseg=bundles/lge_mi_sr_segmentation
run() { echo; echo "=== $*"; $py -m monai.bundle run "$@"; }
# short schedules so that the whole job runs on a laptop CPU; drop the --epochs overrides for the configs' defaults
run --config_file $sseg/configs/pretrain.json --bundle_root $sseg --epochs 2
run --config_file $sseg/configs/train.json --bundle_root $sseg --epochs 20 --val_interval 5
(cd $sseg && $py -m scripts.prepare_lowres --dataset_dir ../../data/DTI_LGE_MI --out ../../data/DTI_LGE_MI_lowres --split test --overwrite True)
run --config_file $sseg/configs/inference.json --bundle_root $sseg --overwrite true
run --config_file "['$sseg/configs/train.json','$sseg/configs/evaluate.json']" --bundle_root $sseg

style=bundles/dti_lge_style_transfer
run --config_file "['$style/configs/train.json','$style/configs/train_segmentor.json']" --bundle_root $style \
    --epochs 40 --val_interval 5 --lr 0.003
run --config_file $style/configs/train.json --bundle_root $style --epochs 10
run --config_file "['$style/configs/train.json','$style/configs/evaluate.json']" --bundle_root $style
(cd $style && $py -m scripts.prepare_dti_folder --dataset_dir ../../data/DTI_LGE_MI \
    --out ../../data/DTI_LGE_MI_dti_test --split test --overwrite True)
run --config_file $style/configs/inference.json --bundle_root $style --overwrite true
run --config_file "['$style/configs/inference.json','$style/configs/pipeline.json']" --bundle_root $style --overwrite true \
    --sseg_bundle_root $sseg
echo
echo "Done. SwinSSegNet masks: $sseg/outputs/, its metrics and overlays: $sseg/eval/"
echo "      LGE-style images and DTI pipeline masks: $style/outputs/, translation metrics and overlays: $style/eval/"
