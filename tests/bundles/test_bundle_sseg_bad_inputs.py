"""Bad inputs stop the SwinSSegNet bundle before anything is written, with a message naming the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import exception_messages, tiny_overrides
from monai.bundle import ConfigWorkflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"
NET = tiny_overrides(BUNDLE.name)


def _initialize_train(dataset_dir: Path, out: Path) -> None:
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE / "configs" / "train.json"),
        logging_file=None,
        bundle_root=str(BUNDLE),
        dataset_dir=str(dataset_dir),
        output_dir=str(out / "eval"),
        ckpt_dir=str(out / "models"),
        use_ssl_pretrained=False,
    )
    workflow.initialize()


@pytest.fixture()
def dataset(tiny_data, tmp_path) -> Path:
    copy = tmp_path / "DTI_LGE_MI"
    shutil.copytree(tiny_data / "DTI_LGE_MI", copy)
    return copy


def _first_case(dataset: Path) -> Path:
    return sorted(dataset.glob("Case_*"))[0]


def _rewrite(path: Path, data: np.ndarray, affine=None) -> None:
    affine = nib.load(path).affine if affine is None else affine
    nib.save(nib.Nifti1Image(data, affine), path)


def _corrupt(dataset: Path) -> Path:
    path = _first_case(dataset) / "LGE.nii.gz"
    path.write_bytes(b"\x1f\x8b garbage, not a NIfTI")
    return path


def _nan(dataset: Path) -> Path:
    path = _first_case(dataset) / "LGE.nii.gz"
    data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    data[10, 10, 0] = np.nan
    _rewrite(path, data)
    return path


def _wrong_dimension(dataset: Path) -> Path:
    path = _first_case(dataset) / "LGE.nii.gz"
    _rewrite(path, np.zeros((8, 8, 8, 2), dtype=np.float32))
    return path


def _mismatched_label(dataset: Path) -> Path:
    path = _first_case(dataset) / "LGE_MI.nii.gz"
    _rewrite(path, np.zeros((256, 256, 1), dtype=np.uint8))
    return path


@pytest.mark.parametrize("make_bad", [_corrupt, _nan, _wrong_dimension, _mismatched_label])
def test_bad_file_is_named_before_any_output(dataset, tmp_path, make_bad):
    bad = make_bad(dataset)
    with pytest.raises(Exception) as error:
        _initialize_train(dataset, tmp_path / "run")
    assert bad.name in exception_messages(error.value) and bad.parent.name in exception_messages(error.value)
    assert not (tmp_path / "run").exists(), "nothing may be written before the inputs are validated"


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_missing_or_empty_dataset_dir(tmp_path, folder):
    target = tmp_path / folder
    if folder == "empty":
        target.mkdir()
    with pytest.raises(Exception) as error:  # MONAI wraps the DatasetError in a RuntimeError
        _initialize_train(target, tmp_path / "run")
    message = exception_messages(error.value)
    assert "DatasetError" in message
    assert str(target) in message and "make_data" in message
    assert not (tmp_path / "run").exists()


def _ssl_checkpoint(path: Path, drop: int = 0) -> Path:
    """A U-SSL checkpoint as pretrain.json writes it (``{"network": SSLNet state}``), less its last ``drop`` encoder
    keys (a run of another version, a truncated export)."""
    from common.ssl import SSLNet

    state = SSLNet(**NET).state_dict()
    encoder_keys = [k for k in state if k.startswith("encoder.")]
    for key in encoder_keys[len(encoder_keys) - drop :]:
        del state[key]
    torch.save({"network": state}, path)
    return path


def _load_ssl_encoder(ssl_path: Path, tmp_path: Path) -> tuple[int, int]:
    """``load_ssl_encoder`` of train.json (tiny network) on ``ssl_path``, and the ``ssl_encoder_min_keys`` it used."""
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE / "configs" / "train.json"),
        logging_file=None,
        **NET,
        bundle_root=str(BUNDLE),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "eval"),
        ssl_pretrained_path=str(ssl_path),
    )
    minimum = workflow.parser.get_parsed_content("ssl_encoder_min_keys")
    return workflow.parser.get_parsed_content("load_ssl_encoder"), minimum


def test_ssl_encoder_load_covers_the_whole_encoder(tmp_path):
    from common.nets import SwinSSeg

    encoder_keys = len(SwinSSeg(**NET).encoder.state_dict())
    loaded, minimum = _load_ssl_encoder(_ssl_checkpoint(tmp_path / "model_ssl.pt"), tmp_path)
    assert minimum == encoder_keys > 10  # computed from the network, not a literal 1
    assert loaded == encoder_keys


def test_ssl_checkpoint_missing_encoder_keys_is_refused(tmp_path):
    path = _ssl_checkpoint(tmp_path / "model_ssl.pt", drop=3)
    with pytest.raises(Exception) as error:
        _load_ssl_encoder(path, tmp_path)
    message = exception_messages(error.value)
    assert "ValueError" in message and str(path) in message and "min_keys" in message
