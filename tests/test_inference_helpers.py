"""Folder-inference output planning never overwrites and reports unreadable inputs; outputs keep the input's axes."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
from common.inference import UnreadableInputError, output_path, plan_outputs, report_unreadable
from monai.transforms import LoadImaged, SaveImaged


def test_output_path_naming(tmp_path):
    assert output_path("/in/case_1.nii.gz", tmp_path, "mi_x8") == str(tmp_path / "case_1_mi_x8.nii.gz")


def test_plan_outputs_refuses_existing_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_seg.nii.gz").write_bytes(b"old")
    data = [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "b.nii.gz")}]
    with pytest.raises(FileExistsError, match="a_seg.nii.gz"):
        plan_outputs(data, tmp_path / "out", "seg")
    assert plan_outputs(data, tmp_path / "out", "seg", overwrite=True) == data


def test_plan_outputs_never_overwrites_inputs(tmp_path):
    data = [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "a_seg.nii.gz")}]
    with pytest.raises(FileExistsError, match="overwrite an input"):
        plan_outputs(data, tmp_path, "seg", overwrite=True)


def test_an_input_set_aside_as_unreadable_is_never_overwritten(tmp_path):
    """Outputs written into the input folder: ``a_seg.nii.gz`` is the user's (unreadable) file, not an output."""
    import nibabel as nib
    import numpy as np
    from common.inference import FolderInputs

    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)), tmp_path / "a.nii.gz")
    (tmp_path / "a_seg.nii.gz").write_bytes(b"not a nifti")
    inputs = FolderInputs(tmp_path, output_dir=tmp_path, postfix="seg", overwrite="true")
    with pytest.raises(FileExistsError, match="a_seg.nii.gz would overwrite an input"):
        inputs.datalist()
    assert (tmp_path / "a_seg.nii.gz").read_bytes() == b"not a nifti"


def test_report_unreadable():
    report_unreadable([])
    with pytest.raises(UnreadableInputError, match="bad.nii.gz"):
        report_unreadable([("/x/bad.nii.gz", "corrupt")])


def test_plan_outputs_refuses_two_inputs_with_one_output_name(tmp_path):
    data = [{"image": str(tmp_path / "a" / "DTI.nii.gz")}, {"image": str(tmp_path / "b" / "DTI.nii.gz")}]
    with pytest.raises(FileExistsError, match="both be written"):
        plan_outputs(data, tmp_path / "out", "seg")


def test_folder_inputs_touch_nothing_until_listed(tmp_path, caplog):
    import nibabel as nib
    import numpy as np
    from common.data import DatasetError
    from common.inference import FolderInputs

    inputs = FolderInputs(tmp_path / "missing", output_dir=tmp_path / "out", postfix="seg")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetError, match="missing"):
        inputs.datalist()
    folder = tmp_path / "in"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 1), np.float32), np.eye(4)), str(folder / "a.nii.gz"))
    (folder / "b.nii.gz").write_bytes(b"not a nifti")
    inputs = FolderInputs(folder, output_dir=tmp_path / "out", postfix="seg")
    with caplog.at_level(logging.WARNING, logger="common.inference"):
        assert inputs.datalist() == [{"image": str((folder / "a.nii.gz").resolve())}]
    # named when set aside, not only at the end (an input that stops the run later would leave it unnamed)
    assert f"setting aside unreadable input {(folder / 'b.nii.gz').resolve()}" in caplog.text
    assert (tmp_path / "out").is_dir() and [p for p, _ in inputs.unreadable] == [str((folder / "b.nii.gz").resolve())]
    with pytest.raises(UnreadableInputError, match="b.nii.gz"):
        inputs.report_unreadable()


def test_deferred_dataset_has_no_length_until_opened():
    from common.inference import DeferredDataset

    calls = []
    dataset = DeferredDataset(lambda: calls.append(1) or [{"x": 1}, {"x": 2}], transform=None)
    assert not calls
    with pytest.raises(TypeError, match="open"):
        len(dataset)  # MONAI's engines then leave epoch_length unset instead of listing the data
    with pytest.raises(RuntimeError, match="open"):
        dataset[0]
    assert dataset.open() == 2 and dataset.open() == 2 and calls == [1]
    assert len(dataset) == 2 and dataset[1] == {"x": 2}
    with pytest.raises(TypeError, match="callable"):
        DeferredDataset([{"x": 1}])


@pytest.mark.parametrize(
    "shape, written",
    [
        ((8, 6, 1), (8, 6, 1)),  # one-slice stack: MONAI's default writer writes (8, 6)
        ((8, 6, 1, 5), (8, 6, 1, 5)),  # one-slice cine, time loaded as channels and moved back
        ((8, 6), (8, 6)),  # a 2D image stays 2D
        ((8, 6, 3), (8, 6, 3)),
    ],
)
def test_input_shape_writer_keeps_the_inputs_axes_and_affine(tmp_path, shape, written):
    affine = np.array([[0, -1.3, 0, 10], [1.3, 0, 0, -5], [0, 0, 8, 2], [0, 0, 0, 1]])
    values = np.random.default_rng(0).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "a.nii.gz")
    data = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": str(tmp_path / "a.nii.gz")})
    saver = {"output_dir": str(tmp_path / "out"), "separate_folder": False, "print_log": False, "resample": False}
    SaveImaged("image", writer="common.inference.InputShapeWriter", **saver)(data)
    out = nib.load(tmp_path / "out" / "a_trans.nii.gz")
    assert out.shape == written
    np.testing.assert_allclose(out.affine, affine, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.dataobj), values, atol=1e-6)
    if shape == (8, 6, 1):  # what the writer is for
        SaveImaged("image", output_postfix="plain", **saver)(data)
        assert nib.load(tmp_path / "out" / "a_plain.nii.gz").shape == (8, 6)


def _write(path, shape, affine):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), affine), str(path))
    return str(path)


def test_same_geometry_batches_group_files_by_shape_and_grid(tmp_path):
    from common.inference import DeferredDataset, SameGeometryBatches, geometry_key

    moved = np.diag([2.5, 2.5, 8.0, 1.0])
    moved[:3, 3] = [-40.0, 12.0, 3.0]
    paths = [
        _write(tmp_path / "a.nii.gz", (8, 8, 1), np.diag([2.5, 2.5, 8.0, 1.0])),
        _write(tmp_path / "b.nii.gz", (8, 6, 1), np.diag([2.5, 2.5, 8.0, 1.0])),  # another shape
        _write(tmp_path / "c.nii.gz", (8, 8, 1), moved),  # same grid, elsewhere: batched with a
        _write(tmp_path / "d.nii.gz", (8, 8, 1), np.diag([2.0, 2.5, 8.0, 1.0])),  # other voxel size
        _write(tmp_path / "e.nii.gz", (8, 8, 1), np.diag([-2.5, 2.5, 8.0, 1.0])),  # other orientation
        _write(tmp_path / "f.nii.gz", (8, 8, 1), np.diag([2.5, 2.5, 8.0, 1.0])),
        _write(tmp_path / "g.nii.gz", (8, 8, 1), np.diag([2.5, 2.5, 8.0, 1.0])),
    ]
    assert geometry_key(paths[0]) == geometry_key(paths[2]) != geometry_key(paths[3])
    dataset = DeferredDataset(lambda: [{"image": p} for p in paths])
    sampler = SameGeometryBatches(dataset, files_per_batch=2)
    with pytest.raises(TypeError, match="opened"):
        len(sampler)  # like the dataset: reading a config reads no headers
    dataset.open()
    assert list(sampler) == [[0, 2], [5, 6], [1], [3], [4]]
    assert len(sampler) == 5
    assert list(SameGeometryBatches(dataset, files_per_batch=1)) == [[i] for i in (0, 2, 5, 6, 1, 3, 4)]
    assert list(SameGeometryBatches(dataset, files_per_batch=8)) == [[0, 2, 5, 6], [1], [3], [4]]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="files_per_batch"):
            SameGeometryBatches(dataset, files_per_batch=bad)


def test_a_dataloader_with_same_geometry_batches_gives_each_file_once(tmp_path):
    from common.inference import DeferredDataset, SameGeometryBatches, collate_same_geometry
    from monai.data import DataLoader

    paths = [_write(tmp_path / f"{i}.nii.gz", (8, 8 if i % 3 else 6, 1), np.eye(4)) for i in range(7)]
    dataset = DeferredDataset(
        lambda: [{"image": p} for p in paths], transform=LoadImaged("image", ensure_channel_first=True)
    )
    sampler = SameGeometryBatches(dataset, files_per_batch=3)
    loader = DataLoader(dataset, num_workers=0, batch_sampler=sampler, collate_fn=collate_same_geometry)
    dataset.open()
    shapes, names = [], []
    for batch in loader:
        shapes.append(tuple(batch["image"].shape))
        names += list(batch["image"].meta["filename_or_obj"])
    assert shapes == [(3, 1, 8, 6, 1), (3, 1, 8, 8, 1), (1, 1, 8, 8, 1)]  # files 0, 3, 6 are 8x6
    assert sorted(names) == sorted(paths) and len(loader) == 3


def test_collate_same_geometry_names_the_files_and_the_fix():
    import torch
    from common.inference import collate_same_geometry
    from monai.data import MetaTensor

    items = [{"image": MetaTensor(torch.zeros(1, 4, n), meta={"filename_or_obj": f"/in/{n}.nii.gz"})} for n in (4, 5)]
    with pytest.raises(RuntimeError, match=r"/in/4.nii.gz.*/in/5.nii.gz.*\(1, 4, 5\).*--files_per_batch 1"):
        collate_same_geometry(items)
    assert collate_same_geometry(items[:1])["image"].shape == (1, 1, 4, 4)
