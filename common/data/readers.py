"""Readers of the real datasets' folder layouts: lists of dicts of absolute paths, sorted by case id.

Each reader accepts the dataset folder itself (``.../EMIDEC``) or a parent that contains it (``.../data``), and
raises :class:`~common.data.validation.DatasetError` naming the folder, the expected layout and the fix when it
finds nothing. The dicts feed MONAI dictionary transforms directly (``LoadImaged(keys=["image", "label"])``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from common.data.validation import MAKE_DATA_HINT, DatasetError
from common.typing import PathLike

__all__ = [
    "dti_lge_mi_cases",
    "emidec_cases",
    "acdc_cases",
    "mscmrseg_cases",
    "ixi_cases",
    "nnunet_cases",
    "hr_truth_cases",
    "split_cases",
    "dti_lge_mi_split",
    "natural_key",
]


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``patient2`` before ``patient10``)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text)))


def _error(root: PathLike, layout: str, detail: str = "") -> DatasetError:
    detail = f" ({detail})" if detail else ""
    return DatasetError(
        f"no {layout.split('/')[0]} case found under {Path(root).expanduser().resolve()}{detail}; expected the layout "
        f"`{layout}` (pass the dataset folder or its parent); {MAKE_DATA_HINT}."
    )


def _nifti(stem: Path) -> Path:
    """``<stem>.nii.gz``, or ``<stem>.nii`` where only that exists (copies of the releases come in both)."""
    gz, plain = stem.with_name(stem.name + ".nii.gz"), stem.with_name(stem.name + ".nii")
    return plain if plain.is_file() and not gz.is_file() else gz


def _candidates(root: PathLike, *names: str) -> list[Path]:
    root = Path(root).expanduser().resolve()
    folders = [root.joinpath(*names[i:]) for i in range(len(names))] + [root]
    return [folder for folder in folders if folder.is_dir()]


def _first(root: PathLike, layout: str, names: Sequence[str], find) -> tuple[Path, list]:
    if not Path(root).expanduser().is_dir():
        raise _error(root, layout, "folder does not exist")
    for folder in _candidates(root, *names):
        found = find(folder)
        if found:
            return folder, found
    raise _error(root, layout, "folder is empty" if not any(Path(root).expanduser().iterdir()) else "")


def dti_lge_mi_cases(root: PathLike, require_dti: bool = False) -> list[dict[str, str]]:
    """Cases of the paired DTI-LGE MI set: ``DTI_LGE_MI/Case_NNN/{LGE.nii.gz, LGE_MI.nii.gz, DTI.nii.gz?}``.

    Args:
        root: the ``DTI_LGE_MI`` folder or its parent.
        require_dti: keep only the paired cases (those with ``DTI.nii.gz``).

    Returns:
        ``[{"case", "lge", "mask", "dti"?}]``; ``"dti"`` only where the file exists.

    Raises:
        DatasetError: no case (or no paired case with ``require_dti``), or a case folder lacks its ``LGE.nii.gz`` or
            ``LGE_MI.nii.gz`` (named).
    """
    layout = "DTI_LGE_MI/Case_NNN/{LGE.nii.gz, LGE_MI.nii.gz, DTI.nii.gz (paired cases)}"

    def find(folder: Path) -> list[Path]:
        return [d for d in folder.glob("Case_*") if d.is_dir()]

    _, folders = _first(root, layout, ("DTI_LGE_MI",), find)
    cases = []
    for case in sorted(folders, key=lambda d: natural_key(d.name)):
        lge, mask, dti = _nifti(case / "LGE"), _nifti(case / "LGE_MI"), _nifti(case / "DTI")
        if not lge.is_file():
            raise DatasetError(f"case folder {case} has no LGE.nii.gz (`{layout}`); add it or remove the folder.")
        if not mask.is_file():
            raise DatasetError(f"{case} has LGE.nii.gz but no LGE_MI.nii.gz MI mask; add the mask or remove the case.")
        entry = {"case": case.name, "lge": str(lge), "mask": str(mask)}
        if dti.is_file():
            entry["dti"] = str(dti)
        if entry.get("dti") or not require_dti:
            cases.append(entry)
    if not cases:
        raise _error(root, layout, "no case has DTI.nii.gz and require_dti=True")
    return cases


def emidec_cases(root: PathLike, require_label: bool = True) -> list[dict[str, str]]:
    """Cases of EMIDEC: ``EMIDEC/Case_XNNN/Images/Case_XNNN.nii.gz`` + ``Contours/Case_XNNN.nii.gz``.

    ``X`` is ``P`` (pathological) or ``N`` (normal). Labels: ``EMIDEC_LABELS``.

    Args:
        root: the ``EMIDEC`` folder or its parent.
        require_label: raise if a case has no contour file; with False such cases come without ``"label"``.

    Returns:
        ``[{"case", "image", "label"}]``.

    Raises:
        DatasetError: nothing found, or a ``Case_*`` folder lacks its image (or its contour, with ``require_label``).
    """
    layout = "EMIDEC/Case_XNNN/{Images,Contours}/Case_XNNN.nii.gz"

    def find(folder: Path) -> list[Path]:
        return [d for d in folder.glob("Case_*") if d.is_dir()]

    _, folders = _first(root, layout, ("EMIDEC",), find)
    cases = []
    for case in sorted(folders, key=lambda d: natural_key(d.name)):
        image = _nifti(case / "Images" / case.name)
        if not image.is_file():
            raise DatasetError(f"case folder {case} has no image {image} (`{layout}`); add it or remove the folder.")
        entry = {"case": case.name, "image": str(image)}
        label = _nifti(case / "Contours" / case.name)
        if label.is_file():
            entry["label"] = str(label)
        elif require_label:
            raise DatasetError(f"{case} has no contour file {label}; add it or call emidec_cases(require_label=False).")
        cases.append(entry)
    return cases


def _read_info(path: Path) -> dict[str, str]:
    info = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def acdc_cases(root: PathLike, frames: Sequence[str] = ("ed", "es")) -> list[dict[str, str]]:
    """End-diastolic/-systolic frames of ACDC: ``ACDC/training/patientNNN/patientNNN_frameXX[_gt].nii.gz``.

    The ED and ES frame numbers come from each patient's ``Info.cfg``. Labels: ``ACDC_LABELS``.

    Args:
        root: ``ACDC``, ``ACDC/training`` or their parent; or the challenge archive's folder (holding
            ``database/training``), also as ``ACDC/``.
        frames: any of ``"ed"``, ``"es"``.

    Returns:
        ``[{"case", "image", "label", "frame"}]`` sorted by patient, then in the order of ``frames``.

    Raises:
        ValueError: unknown frame name.
        DatasetError: nothing found, or a patient lacks ``Info.cfg`` or a frame file (named).
    """
    frames = tuple(frames)
    if not frames or any(frame not in ("ed", "es") for frame in frames):
        raise ValueError(f"frames must be a non-empty subset of ('ed', 'es'), got {frames}.")
    layout = "ACDC/training/patientNNN/{patientNNN_frameXX.nii.gz, patientNNN_frameXX_gt.nii.gz, Info.cfg}"

    def find(folder: Path) -> list[Path]:
        return [d for d in folder.glob("patient*") if d.is_dir()]

    try:
        _, folders = _first(root, layout, ("ACDC", "training"), find)
    except DatasetError:  # the challenge's own archive, <unzipped>/database/training, given or under ACDC/
        archive = next(
            (base / "database" for base in (Path(root).expanduser(), Path(root).expanduser() / "ACDC")
             if (base / "database" / "training").is_dir()),
            None,
        )  # fmt: skip
        if archive is None:
            raise
        _, folders = _first(archive, layout, ("training",), find)
    cases = []
    for patient in sorted(folders, key=lambda d: natural_key(d.name)):
        if not (patient / "Info.cfg").is_file():
            raise DatasetError(f"{patient} has no Info.cfg (its ED and ES frame numbers; `{layout}`).")
        info = _read_info(patient / "Info.cfg")
        for frame in frames:
            key = frame.upper()
            if key not in info:
                raise DatasetError(f"{patient / 'Info.cfg'} has no {key} entry; expected lines like `{key}: 1`.")
            stem = patient / f"{patient.name}_frame{int(info[key]):02d}"
            image, label = _nifti(stem), _nifti(stem.with_name(stem.name + "_gt"))
            for path in (image, label):
                if not path.is_file():
                    raise DatasetError(f"{path} is missing ({key} frame {info[key]} in {patient / 'Info.cfg'}).")
            cases.append({"case": patient.name, "image": str(image), "label": str(label), "frame": frame})
    return cases


def mscmrseg_cases(root: PathLike, modality: str = "C0") -> list[dict[str, str]]:
    """Cases of MS-CMRSeg 2019: ``patientN_<modality>.nii.gz`` (+ ``patientN_<modality>_manual.nii.gz``), in one
    folder (``MSCMRSeg/``, the default data) or in the release's subfolders (images in ``c0t2lge/``, labels in
    ``c0gt/``, ``lgegt/``, ``t2gt/`` or a later label folder): files are found at any depth under ``root``.

    Args:
        root: the ``MSCMRSeg`` folder, the release's folder, or their parent.
        modality: ``"C0"`` (bSSFP), ``"LGE"`` or ``"T2"``.

    Returns:
        ``[{"case", "image", "label"?}]``; ``"label"`` only where the manual file exists (labels ``MSCMR_LABELS``).

    Raises:
        DatasetError: no case found, or one file name found in two places (the paths are named).
    """
    if modality not in ("C0", "LGE", "T2"):
        raise ValueError(f"modality must be 'C0', 'LGE' or 'T2', got {modality!r}.")
    layout = f"MSCMRSeg/patientN_{modality}.nii.gz (+ patientN_{modality}_manual.nii.gz, here or in a sibling folder)"
    pattern = re.compile(rf"^(patient\d+)_{modality}\.nii(\.gz)?$")

    def find(folder: Path) -> list[Path]:
        return [p for p in folder.rglob(f"patient*_{modality}.nii*") if pattern.match(p.name)]

    # searched at any depth, so never a parent holding other datasets once its MSCMRSeg folder exists
    dedicated = Path(root).expanduser() / "MSCMRSeg"
    folder, files = _first(dedicated if dedicated.is_dir() else root, layout, (), find)
    labels = _unique_by_name(folder.rglob(f"patient*_{modality}_manual.nii*"))
    cases = []
    for name, image in sorted(_unique_by_name(files).items(), key=lambda item: natural_key(item[0])):
        case = pattern.match(name).group(1)
        if cases and cases[-1]["case"] == case:
            raise DatasetError(f"{case} has two {modality} files, {cases[-1]['image']} and {image}: keep one.")
        entry = {"case": case, "image": str(image)}
        label = labels.get(f"{case}_{modality}_manual.nii.gz", labels.get(f"{case}_{modality}_manual.nii"))
        if label is not None:
            entry["label"] = str(label)
        cases.append(entry)
    return cases


def _unique_by_name(paths: Iterable[Path]) -> dict[str, Path]:
    """``{file name: path}``; a name found in two folders is refused (which copy is meant cannot be told)."""
    found: dict[str, Path] = {}
    for path in sorted(paths):
        if path.name in found:
            raise DatasetError(
                f"{path.name} is found twice, {found[path.name]} and {path}: keep one copy under the dataset folder."
            )
        found[path.name] = path
    return found


def ixi_cases(root: PathLike, contrast: str = "T1", with_tissue: bool = False) -> list[dict[str, str]]:
    """Volumes of IXI: ``IXI/IXINNN-<Hospital>-NNNN-<contrast>.nii.gz``.

    Args:
        root: the ``IXI`` folder or its parent.
        contrast: ``"T1"``, ``"T2"``, ``"PD"``, ...
        with_tissue: add ``"gm"``, ``"wm"``, ``"csf"`` (probabilities) and ``"label"`` (``BRAIN_LABELS``) from the
            sibling ``IXI_tissue/`` folder written by ``tools.make_data``; raise if one is missing.

    Returns:
        ``[{"case", "image"}]`` (plus the tissue keys), ``case`` like ``"IXI002-Guys-0828"``.
    """
    layout = f"IXI/IXINNN-<Hospital>-NNNN-{contrast}.nii.gz"
    pattern = re.compile(rf"^(IXI\d+-[A-Za-z]+-\d+)-{re.escape(contrast)}\.nii(\.gz)?$")

    def find(folder: Path) -> list[Path]:
        return [p for p in folder.glob(f"IXI*-{contrast}.nii*") if pattern.match(p.name)]

    folder, files = _first(root, layout, ("IXI",), find)
    cases = []
    for image in sorted(files, key=lambda p: natural_key(p.name)):
        case = pattern.match(image.name).group(1)
        entry = {"case": case, "image": str(image)}
        if with_tissue:
            tissue = folder.parent / "IXI_tissue"
            for key, suffix in (("gm", "GM"), ("wm", "WM"), ("csf", "CSF"), ("label", "seg")):
                path = tissue / f"{case}-{suffix}.nii.gz"
                if not path.is_file():
                    raise DatasetError(f"tissue map {path} is missing for {image}; {MAKE_DATA_HINT}.")
                entry[key] = str(path)
        cases.append(entry)
    return cases


_NNUNET_IMAGE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(\.gz)?$")


def _paired_cases(
    root: PathLike, layout: str, parents: Sequence[str], images: str, labels: str, channel: int
) -> list[dict[str, str]]:
    """``{"case", "image", "label"}`` from ``<images>/<case>_<channel:04d>.nii[.gz]`` + ``<labels>/<case>.nii[.gz]``."""
    if isinstance(channel, bool) or int(channel) != channel or not 0 <= channel <= 9999:
        raise ValueError(f"channel must be an integer in [0, 9999], got {channel!r}.")

    def find(folder: Path) -> list[Path]:
        found = []
        for path in (folder / images).glob("*.nii*"):
            match = _NNUNET_IMAGE.match(path.name)
            if match and int(match.group("channel")) == channel:
                found.append(path)
        return found

    folder, files = _first(root, layout, parents, find)
    cases = []
    for image in sorted(files, key=lambda p: natural_key(p.name)):
        case = _NNUNET_IMAGE.match(image.name).group("case")
        candidates = [folder / labels / f"{case}{ending}" for ending in (".nii.gz", ".nii")]
        label = next((path for path in candidates if path.is_file()), None)
        if label is None:
            raise DatasetError(
                f"{image} has no label {candidates[0]} (or .nii); add it or remove the case from {folder / images}."
            )
        cases.append({"case": case, "image": str(image), "label": str(label)})
    return cases


def nnunet_cases(root: PathLike, channel: int = 0) -> list[dict[str, str]]:
    """Training cases of an nnU-Net v2 raw dataset: ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz``.

    Any nnU-Net raw dataset folder works (``.nii`` too); the default data's is ``Meningioma`` (REHRSeg's thick-slice
    set, labels ``MENINGIOMA_LABELS``), also found from its parent.

    Args:
        root: the dataset folder (holding ``imagesTr``) or the parent of ``Meningioma``.
        channel: the input channel (modality) to list, the ``_XXXX`` file suffix.

    Returns:
        ``[{"case", "image", "label"}]`` sorted by case.

    Raises:
        ValueError: ``channel`` not an integer in [0, 9999].
        DatasetError: no case, or a case lacks its label file (named).
    """
    layout = f"Meningioma/{{imagesTr/<case>_{int(channel):04d}.nii.gz, labelsTr/<case>.nii.gz}} (any nnU-Net raw set)"
    _check_nnunet_file_ending(Path(root).expanduser())
    return _paired_cases(root, layout, ("Meningioma",), "imagesTr", "labelsTr", channel)


def _check_nnunet_file_ending(root: Path) -> None:
    """An nnU-Net v2 set may hold another format (``dataset.json``'s ``file_ending``, e.g. ``.nrrd``, ``.mha``): say
    so instead of finding no case."""
    for path in (root / "dataset.json", root / "Meningioma" / "dataset.json"):
        if path.is_file():
            try:
                ending = json.loads(path.read_text()).get("file_ending", ".nii.gz")
            except (ValueError, AttributeError):
                return
            if ending not in (".nii.gz", ".nii"):
                raise DatasetError(
                    f"{path} says the images are {ending} files; these bundles read NIfTI: convert the set (e.g. with "
                    "SimpleITK or nnU-Net's own converters) to .nii.gz and set file_ending to .nii.gz."
                )
            return


def hr_truth_cases(root: PathLike) -> list[dict[str, str]]:
    """High-resolution truth of the Meningioma set: ``Meningioma_HR/{imagesHR/<case>_0000, labelsHR/<case>}.nii.gz``.

    The thin-slice image and mask from which ``Meningioma``'s thick slices were acquired (same field of view; the HR
    affine is ``thin_slice_affine`` of the thick one), for evaluating HR segmentations.

    Args:
        root: the ``Meningioma_HR`` folder or its parent.

    Returns:
        ``[{"case", "image", "label"}]`` sorted by case.

    Raises:
        DatasetError: no case, or a case lacks its label file (named).
    """
    layout = "Meningioma_HR/{imagesHR/<case>_0000.nii.gz, labelsHR/<case>.nii.gz}"
    return _paired_cases(root, layout, ("Meningioma_HR",), "imagesHR", "labelsHR", 0)


def split_cases(
    cases: Sequence[Mapping], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list]:
    """Deterministic, disjoint train/val/test split of ``cases`` by subject.

    Entries with the same ``"case"`` value (e.g. the ED and ES frames of one ACDC patient) stay in the same split,
    so no subject leaks across splits. With at least three subjects and positive fractions every split is
    non-empty. Each split keeps the input order.

    Args:
        cases: dicts (with a ``"case"`` key, else each entry is its own subject).
        fractions: ``(train, val, test)``, non-negative, summing to 1.
        seed: shuffling seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        ValueError: bad ``fractions``.

    Examples::

        >>> parts = split_cases([{"case": str(i)} for i in range(10)], seed=0)
        >>> [len(parts[k]) for k in ("train", "val", "test")]
        [7, 2, 1]
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}.")
    subjects: list = []
    for index, case in enumerate(cases):
        subject = case.get("case", index) if isinstance(case, Mapping) else index
        if subject not in subjects:
            subjects.append(subject)
    n = len(subjects)
    n_train = int(np.floor(fractions[0] * n + 0.5))
    n_val = int(np.floor((fractions[0] + fractions[1]) * n + 0.5)) - n_train
    counts = [n_train, n_val, n - n_train - n_val]
    if n >= 3:  # every split with a positive fraction gets at least one subject, taken from the largest
        for k in range(3):
            if fractions[k] > 0 and counts[k] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[k] = 1
    n_train, n_val = counts[0], counts[1]
    order = np.random.default_rng(seed).permutation(n)
    assignment = {}
    for rank, position in enumerate(order):
        assignment[subjects[position]] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for index, case in enumerate(cases):
        subject = case.get("case", index) if isinstance(case, Mapping) else index
        parts[assignment[subject]].append(case)
    return parts


def dti_lge_mi_split(
    cases: Sequence[Mapping], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list]:
    """The one split of the paired DTI-LGE MI set that both of its bundles use (CycleGANSeg and SwinSSegNet).

    The held-out cases are drawn from the paired cases only (those with ``"dti"``), so a DTI test pair's LGE never
    trains the SwinSSegNet, the Segmentor or the judge: ``val`` and ``test`` are :func:`split_cases` of the paired
    cases with ``fractions``; with fewer than three paired cases the held-out splits (positive fraction) are served
    first, one pair each, so ``pair_train`` may then be empty. Every other case trains:

    - ``pair_train``: the training pairs (CycleGAN(Seg) and "DTI SSeg");
    - ``lge_train``: every case not held out, unpaired LGE and training pairs (SwinSSegNet);
    - ``segmentor`` and ``judge``: ``lge_train`` cut into two disjoint halves (``segmentor`` takes the odd one), at
      random with ``seed``: CycleGANSeg's frozen Segmentor trains on one, an independent segmenter that scores
      the translations (the judge) on the other.

    Each list keeps the input order.

    Args:
        cases: ``common.data.dti_lge_mi_cases`` entries (each with ``"case"``; ``"dti"`` on the paired ones).
        fractions: ``(train, val, test)`` of the paired cases, as in :func:`split_cases`.
        seed: split seed.

    Returns:
        ``{"pair_train", "val", "test", "lge_train", "segmentor", "judge"}``.

    Raises:
        ValueError: bad ``fractions``, an entry without ``"case"``, or no paired case.

    Examples::

        >>> cases = [{"case": f"Case_{i:03d}", **({"dti": "d"} if i < 10 else {})} for i in range(20)]
        >>> parts = dti_lge_mi_split(cases, seed=0)
        >>> [len(parts[k]) for k in ("pair_train", "val", "test", "lge_train", "segmentor", "judge")]
        [7, 2, 1, 17, 9, 8]
    """
    cases = list(cases)
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping) or "case" not in case:
            raise ValueError(f"entry {index} of cases has no 'case' key: {case!r}; pass dti_lge_mi_cases() entries.")
    paired = [c for c in cases if c.get("dti")]
    if not paired:
        raise ValueError(
            f"none of the {len(cases)} cases has a DTI image ('dti'): val and test are drawn from the paired cases "
            "(DTI_LGE_MI/Case_NNN/DTI.nii.gz), so at least one is needed."
        )
    parts = split_cases(paired, fractions=fractions, seed=seed)
    if len({c["case"] for c in paired}) < 3:  # too few pairs for three splits: the held-out ones come first
        order = [paired[i] for i in np.random.default_rng(seed).permutation(len(paired))]
        parts = {"train": [], "val": [], "test": []}
        for name, fraction in (("val", fractions[1]), ("test", fractions[2])):
            if float(fraction) > 0 and order:
                parts[name].append(order.pop(0))
        parts["train"] = [c for c in paired if any(c is o for o in order)]
    held_out = {c["case"] for c in parts["val"] + parts["test"]}
    lge_train = [c for c in cases if c["case"] not in held_out]
    subjects = list(dict.fromkeys(c["case"] for c in lge_train))
    shuffled = [subjects[i] for i in np.random.default_rng([seed, 1]).permutation(len(subjects))]
    segmentor = set(shuffled[: (len(subjects) + 1) // 2])
    return {
        "pair_train": parts["train"],
        "val": parts["val"],
        "test": parts["test"],
        "lge_train": lge_train,
        "segmentor": [c for c in lge_train if c["case"] in segmentor],
        "judge": [c for c in lge_train if c["case"] not in segmentor],
    }
