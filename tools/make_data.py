"""Write the default datasets in the real datasets' layouts, plus one PNG montage per dataset to look at.

Usage::

    python -m tools.make_data --out data                # all datasets (about 20 s on 2 cores + ~70 s Meningioma)
    python -m tools.make_data --out /tmp/tiny --small    # tiny versions for tests (a few seconds)
    python -m tools.make_data --out data --datasets EMIDEC,ACDC --overwrite

Refuses to write into a non-empty dataset folder unless ``--overwrite``. See ``common.data.write_default_data``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from common.constants import DTI_CHANNELS
from common.data import (
    DATASETS,
    acdc_cases,
    cine_lge_cases,
    dti_lge_mi_cases,
    emidec_cases,
    hr_truth_cases,
    ixi_cases,
    mscmrseg_cases,
    nnunet_cases,
    write_default_data,
)
from PIL import Image, ImageDraw

__all__ = ["main", "write_montage"]

_TILE = 192
_COLOURS = [(255, 60, 60), (60, 220, 60), (70, 140, 255), (255, 220, 0), (255, 0, 255), (0, 255, 255)]


def _volume(path: str) -> np.ndarray:
    data = np.asanyarray(nib.load(path).dataobj)
    return data if data.ndim >= 3 else data[..., None]


def _tile(image: np.ndarray, label: np.ndarray | None, caption: str) -> Image.Image:
    """Gray image (x to the right, y down) with label contours, ``_TILE`` pixels high."""
    image = np.asarray(image, dtype=np.float32).T
    low, high = np.percentile(image, (0.5, 99.5))
    gray = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    width = max(1, int(round(_TILE * gray.shape[1] / gray.shape[0])))
    tile = Image.fromarray((gray * 255).astype(np.uint8)).resize((width, _TILE), Image.BILINEAR).convert("RGB")
    if label is not None:
        lab = np.asarray(Image.fromarray(np.asarray(label).T.astype(np.int32)).resize((width, _TILE), Image.NEAREST))
        edge = np.zeros(lab.shape, dtype=bool)
        edge[1:, :] |= lab[1:, :] != lab[:-1, :]
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        pixels = np.asarray(tile).copy()
        for value in (v for v in np.unique(lab) if v != 0):  # one colour per label value (200/500/600 too)
            pixels[edge & (lab == value)] = _COLOURS[int(value if value < 100 else value // 100) % len(_COLOURS)]
        tile = Image.fromarray(pixels)
    ImageDraw.Draw(tile).text((3, 2), caption, fill=(255, 255, 0))
    return tile


def _mid(label: np.ndarray) -> int:
    """The middle one of the labelled slices (the middle slice when none is labelled)."""
    labelled = np.flatnonzero(label.reshape(-1, label.shape[-1]).any(0))
    return int(labelled[len(labelled) // 2]) if len(labelled) else label.shape[-1] // 2


def _spread(cases: list, n: int) -> list:
    """``n`` cases spread over the sorted list (e.g. normal and pathological EMIDEC cases)."""
    if len(cases) <= n:
        return cases
    return [cases[i] for i in np.linspace(0, len(cases) - 1, n).round().astype(int)]


def _tiles(name: str, root: Path, n: int) -> list[Image.Image]:
    tiles = []
    if name == "DTI_LGE_MI":
        for case in dti_lge_mi_cases(root, require_dti=True)[:n]:
            mask = _volume(case["mask"])[..., 0]
            tiles.append(_tile(_volume(case["lge"])[..., 0], mask, f"{case['case']} LGE"))
            maps = _volume(case["dti"])[:, :, 0]  # (64, 64, channel): DTI_CHANNELS, or one channel of a user's file
            for index, name in enumerate(DTI_CHANNELS[: maps.shape[-1]] if maps.ndim == 3 else ("DTI",)):
                channel = maps[..., index] if maps.ndim == 3 else maps
                tiles.append(_tile(np.kron(channel, np.ones((8, 8), dtype=np.float32)), mask, f"DTI {name} + MI mask"))
    elif name == "EMIDEC":
        for case in _spread(emidec_cases(root), n):
            label = _volume(case["label"])
            z = _mid(label)
            tiles.append(_tile(_volume(case["image"])[..., z], label[..., z], f"{case['case']} z={z}"))
    elif name == "ACDC":
        frames = acdc_cases(root)
        systole = {case["case"]: case for case in frames if case["frame"] == "es"}
        for case in _spread([case for case in frames if case["frame"] == "ed"], n):
            label = _volume(case["label"])
            z = _mid(label)
            tiles.append(_tile(_volume(case["image"])[..., z], label[..., z], f"{case['case']} ED z={z}"))
            es = systole[case["case"]]
            tiles.append(_tile(_volume(es["image"])[..., z], _volume(es["label"])[..., z], "ES"))
    elif name == "MSCMRSeg":
        for modality in ("C0", "LGE"):
            for case in mscmrseg_cases(root, modality)[:n]:
                image = _volume(case["image"])
                label = _volume(case["label"]) if "label" in case else None
                z = _mid(label) if label is not None else image.shape[-1] // 2
                tiles.append(
                    _tile(image[..., z], None if label is None else label[..., z], f"{case['case']} {modality}")
                )
    elif name == "IXI":
        for case in ixi_cases(root, with_tissue=True)[:n]:
            image, label = _volume(case["image"]), _volume(case["label"])
            z = image.shape[2] // 2
            tiles.append(_tile(image[:, :, z], label[:, :, z], f"{case['case']} axial"))
            y = image.shape[1] // 2  # coronal, superior up
            tiles.append(_tile(image[:, y, ::-1], label[:, y, ::-1], "coronal"))
    elif name in ("Meningioma", "CardiacThick"):  # coronal through the label: thick slices + LR label, the HR truth
        truth = {case["case"]: case for case in hr_truth_cases(Path(root).parent / f"{name}_HR")}
        for case in nnunet_cases(root)[: max(1, n // 2)]:
            image, label = _volume(case["image"]), _volume(case["label"])
            hr_image, hr_label = _volume(truth[case["case"]]["image"]), _volume(truth[case["case"]]["label"])
            factor = hr_image.shape[2] // image.shape[2]
            y = int(np.argwhere(hr_label).mean(0)[1]) if hr_label.any() else hr_image.shape[1] // 2
            thick = np.repeat(image[:, y, :], factor, axis=-1)[:, ::-1]  # each thick slice shown `factor` rows high
            tiles.append(_tile(thick, np.repeat(label[:, y, :], factor, axis=-1)[:, ::-1], f"{case['case']} LR"))
            tiles.append(_tile(hr_image[:, y, ::-1], hr_label[:, y, ::-1], "HR truth"))
    elif name == "CineLGE":  # the slice with most scar: cine at end-diastole, its temporal SD (motion), LGE
        for case in _spread(cine_lge_cases(root), max(1, n // 2)):
            cine, lge, label = _volume(case["cine"]), _volume(case["lge"]), _volume(case["label"])
            scar = (label == 3).sum(axis=(0, 1))
            z = int(np.argmax(scar)) if scar.any() else _mid(label)
            tiles.append(_tile(cine[..., z, 0], label[..., z], f"{case['case']} cine ED z={z}"))
            tiles.append(_tile(cine[..., z, :].astype(np.float32).std(-1), None, "cine temporal SD"))
            tiles.append(_tile(lge[..., z], label[..., z], "LGE"))
    return tiles


def write_montage(name: str, root: Path, png: Path, n: int = 4) -> Path:
    """Save a montage of ``n`` cases of dataset ``name`` (folder ``root``) with label contours to ``png``."""
    tiles = _tiles(name, Path(root), n)
    columns = 4
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    width = max(sum(t.width for t in row) for row in rows)
    canvas = Image.new("RGB", (width, _TILE * len(rows)))
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            canvas.paste(tile, (x, r * _TILE))
            x += tile.width
    png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(png)
    return png


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.make_data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="output root (default: data)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    parser.add_argument("--small", action="store_true", help="tiny versions for tests")
    parser.add_argument("--overwrite", action="store_true", help="replace non-empty dataset folders")
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {','.join(DATASETS)}"
    )
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per CPU)")
    parser.add_argument("--no-montage", action="store_true", help="skip the PNG montages")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    datasets = [name.strip() for name in args.datasets.split(",") if name.strip()]
    start = time.perf_counter()
    try:
        paths = write_default_data(
            args.out,
            seed=args.seed,
            small=args.small,
            datasets=datasets,
            overwrite=args.overwrite,
            workers=args.workers,
            log=print,
        )
    except (FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} dataset(s) in {time.perf_counter() - start:.1f} s")
    if not args.no_montage:
        for name, folder in paths.items():
            png = write_montage(name, folder, Path(args.out) / "montage" / f"{name}.png")
            print(f"montage: {png}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
