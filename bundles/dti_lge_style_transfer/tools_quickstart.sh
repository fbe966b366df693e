#!/usr/bin/env bash
# The DTI -> LGE style-transfer part of tools/quickstart.sh (called from the repository root with the Python to use):
# Segmentor -> CycleGANSeg -> evaluation -> DTI folder -> LGE-style images -> 512x512 MI masks through SwinSSegNet.
# Short schedules so that it runs on a laptop CPU; drop the --epochs overrides for the configs' defaults.
set -euo pipefail
py=${1:-python}
style=bundles/dti_lge_style_transfer
sseg=bundles/lge_mi_sr_segmentation
run() { echo; echo "=== $*"; $py -m monai.bundle run "$@"; }
run --config_file "['$style/configs/train.json','$style/configs/train_segmentor.json']" --bundle_root $style \
    --epochs 40 --val_interval 5 --lr 0.003
run --config_file $style/configs/train.json --bundle_root $style --epochs 10
run --config_file "['$style/configs/train.json','$style/configs/evaluate.json']" --bundle_root $style
(cd $style && $py -m scripts.prepare_dti_folder --dataset_dir ../../data/DTI_LGE_MI \
    --out ../../data/DTI_LGE_MI_dti_test --split test --overwrite True)
run --config_file $style/configs/inference.json --bundle_root $style --overwrite true
if [ -f $sseg/models/model.pt ]; then
    run --config_file "['$style/configs/inference.json','$style/configs/pipeline.json']" --bundle_root $style \
        --overwrite true
fi
echo
echo "Done. LGE-style images and MI masks: $style/outputs/, translation metrics and grids: $style/eval/"
