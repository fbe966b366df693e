"""Dense-CRF parameters chosen on labelled LGE-style training data, never on the volumes a result is reported on.

The paper (section 2.3) refines each slice with a dense CRF but gives no parameters; Krähenbühl & Koltun's defaults
(``configs/inference.json``: kernels in pixels, set for photographs) are what the bundle starts from. This script
picks them for a trained cascade on a labelled set in the LGE domain that the user has without LGE labels: a
synthetic set (``configs/generate.json``: translated bSSFP stacks with the bSSFP labels). Use a set the chosen
segmenter (or, for an ensemble, no member) was not fine-tuned on: with K members, generate one more set with
``--member K`` (``synthetic/set_1`` for a single model).

For every volume the network runs once (``configs/inference.json``: localiser, crop, cascade); then every setting of
:data:`GRID` (and "no CRF") goes through the inference post-processing (CRF, argmax, the morphology when
``use_morphology``, back to the input grid) and is scored by the mean Dice of LV, MYO and RV against the source
labels. The best setting is written as a config overlay; pass it after ``inference.json``::

    python -m scripts.tune_crf --tuning_dir synthetic/set_1 --out models/crf.json
    python -m monai.bundle run --config_file "['configs/inference.json','models/crf.json']" ...

Every setting's score goes to ``<out>`` with ``_scores`` before the extension. Options: ``--ckpt_dir`` (default
``models``), ``--segmenter_weights`` (another cascade stage file), ``--styles`` (the synthetic styles used, default
0: one stack per patient), ``--overlays`` (config files layered on ``inference.json``, e.g. ``configs/quick.json``
for quick-mode models).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import fire
import nibabel as nib
import numpy as np
import torch
from common.metrics import dice

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the searched CRF settings (``configs/inference.json`` keys): Krähenbühl's defaults (80 px, 13, 10) are in it; the
#: spatial widths span a few pixels to the default; the Gaussian (smoothness) kernel keeps its defaults (3 px, 3)
GRID = {
    "crf_theta_alpha": (5.0, 10.0, 20.0, 40.0, 80.0),
    "crf_theta_beta": (5.0, 13.0, 30.0),
    "crf_w_alpha": (1.0, 3.0, 10.0),
}
#: MS-CMRSeg label values scored (LV, MYO, RV)
STRUCTURES = {"lv": 500, "myo": 200, "rv": 600}


def grid_settings() -> list[dict[str, Any]]:
    """``{"use_crf": False}`` first, then every combination of :data:`GRID` with ``use_crf`` on."""
    names = list(GRID)
    combos = [dict(zip(names, values), use_crf=True) for values in itertools.product(*GRID.values())]
    return [{"use_crf": False}, *combos]


def _parser(overrides: dict[str, Any], overlays: Sequence[str]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([os.path.join(BUNDLE_ROOT, "configs", "inference.json"), *overlays])
    parser["bundle_root"] = BUNDLE_ROOT
    for key, value in overrides.items():
        parser[key] = value
    return parser


def _tuning_items(tuning_dir: str, styles: Sequence[int]) -> list[dict[str, str]]:
    path = os.path.join(tuning_dir, "datalist.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: --tuning_dir takes a synthetic set written by configs/generate.json."
        )
    with open(path) as f:
        items = [item for item in json.load(f)["training"] if int(item.get("style", 0)) in styles]
    if not items:
        raise ValueError(f"no item of {path} has a style in {list(styles)}.")
    return [
        {"image": os.path.join(tuning_dir, i["image"]), "label": os.path.join(tuning_dir, i["label"])} for i in items
    ]


def network_outputs(items: list[dict[str, str]], overrides: dict[str, Any], overlays: Sequence[str]) -> list[dict]:
    """Run ``inference.json``'s evaluator (weights, localiser, crop, cascade) without post-processing: per item
    the preprocessed batch item (``image``, its crop record) with the network's ``pred`` logits."""
    from ignite.engine import Events

    with tempfile.TemporaryDirectory() as nothing_written:  # the folder inputs' output folder (nothing is saved)
        folder = os.path.dirname(items[0]["image"])
        parser = _parser(
            dict(overrides, postprocessing=None, save_outputs=False, dataset_dir=folder, output_dir=nothing_written),
            overlays,
        )
        datalist = [{"image": item["image"]} for item in items]
        parser["datalist"] = lambda: datalist  # the deferred dataset takes a callable (FolderInputs.datalist)
        parser.get_parsed_content("dataset").open()
        evaluator = parser.get_parsed_content("evaluator")
        outputs: list[dict] = []
        # what the engine's post-processing would see: each decollated batch item updated with its output
        evaluator.add_event_handler(
            Events.ITERATION_COMPLETED,
            lambda engine: outputs.extend({**b, **o} for b, o in zip(engine.state.batch, engine.state.output)),
        )
        evaluator.run()
    return outputs


def score_setting(outputs: list[dict], items: list[dict[str, str]], postprocessing: Any) -> list[float]:
    """Mean Dice (LV, MYO, RV) per volume of ``postprocessing`` applied to copies of ``outputs``."""
    scores = []
    for output, item in zip(outputs, items):
        pred = np.asarray(postprocessing(copy.deepcopy(output))["pred"]).squeeze()
        truth = np.asarray(nib.load(item["label"]).dataobj)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {pred.shape} and label {truth.shape} of {item['image']} differ in shape.")
        scores.append(float(np.mean([dice(pred, truth, labels=value) for value in STRUCTURES.values()])))
    return scores


def tune_crf(
    tuning_dir: str,
    out: str,
    ckpt_dir: str | None = None,
    segmenter_weights: str | None = None,
    styles: Sequence[int] | int = (0,),
    overlays: Sequence[str] | str = (),
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score every setting of :func:`grid_settings` on ``tuning_dir``; write the best as the overlay ``out``.

    Returns:
        the overlay (``use_crf`` and, when on, the ``crf_*`` values).
    """
    styles = (styles,) if isinstance(styles, int) else tuple(int(s) for s in styles)
    overlays = [overlays] if isinstance(overlays, str) else list(overlays)
    overrides = dict(overrides or {})
    if ckpt_dir is not None:
        overrides["ckpt_dir"] = ckpt_dir
    if segmenter_weights is not None:
        overrides["segmenter_weights"] = segmenter_weights
    items = _tuning_items(tuning_dir, styles)
    with torch.no_grad():
        outputs = network_outputs(items, overrides, overlays)
    results = []
    for setting in grid_settings():
        post = _parser(dict(overrides, save_outputs=False, **setting), overlays).get_parsed_content("postprocessing")
        per_volume = score_setting(outputs, items, post)
        results.append({"setting": setting, "mean_dice": float(np.mean(per_volume)), "per_volume": per_volume})
        print(f"{setting}: mean Dice {results[-1]['mean_dice']:.4f}", flush=True)
    best = max(results, key=lambda r: r["mean_dice"])  # "no CRF" is first, so it wins ties
    overlay = dict(best["setting"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(overlay, f, indent=4)
    root, ext = os.path.splitext(out)
    with open(f"{root}_scores{ext or '.json'}", "w") as f:
        json.dump({"tuning_dir": tuning_dir, "volumes": [i["image"] for i in items], "results": results}, f, indent=1)
    print(f"best: {overlay} (mean Dice {best['mean_dice']:.4f} on {len(items)} volumes of {tuning_dir}) -> {out}")
    return overlay


def main(
    tuning_dir: str,
    out: str = "models/crf.json",
    ckpt_dir: str | None = None,
    segmenter_weights: str | None = None,
    styles: int | str = 0,
    overlays: str | Sequence[str] = (),
) -> None:
    """Command-line entry (see the module docstring)."""
    if isinstance(styles, str):
        styles = [int(s) for s in styles.split(",") if s.strip()]
    tune_crf(tuning_dir, out, ckpt_dir=ckpt_dir, segmenter_weights=segmenter_weights, styles=styles, overlays=overlays)


if __name__ == "__main__":
    fire.Fire(main)
