"""InferenceProgress: files and slices done, ETA from the time per slice (a 10-slice stack weighs ten slices)."""

from __future__ import annotations

import itertools
import logging

import nibabel as nib
import numpy as np
import torch
from common.handlers import InferenceProgress
from common.handlers import inference_progress as progress_module
from common.handlers import slices_in_batch
from common.inference import FolderInputs
from ignite.engine import Engine
from monai.data import MetaTensor


def test_slices_in_batch_counts_every_slice_of_a_stack():
    assert slices_in_batch({"image": torch.zeros(1, 1, 8, 8, 10)}) == 10
    assert slices_in_batch({"image": torch.zeros(3, 1, 8, 8)}) == 3
    assert slices_in_batch({"image": torch.zeros(2, 1, 8, 8, 4)}) == 8
    assert slices_in_batch({"other": torch.zeros(1)}) == 1
    # decollated (what MONAI's evaluators leave in engine.state.batch): items are (C, H, W[, D])
    assert slices_in_batch([{"image": torch.zeros(1, 8, 8, 10)}, {"image": torch.zeros(1, 8, 8)}]) == 11


def test_eta_is_linear_in_slices_not_files(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    depths = {"a_slice": 1, "b_stack": 10, "c_stack": 4}
    for name, depth in depths.items():
        nib.save(nib.Nifti1Image(np.zeros((8, 8, depth), np.float32), np.eye(4)), folder / f"{name}.nii.gz")
    inputs = FolderInputs(folder, output_dir=tmp_path / "out", postfix="seg", ndim=[2, 3])
    assert inputs.total_slices() == 15

    batches = [  # decollated, as MONAI's evaluators leave them
        [{"image": MetaTensor(torch.zeros(1, 8, 8, depth), meta={"filename_or_obj": f"/x/{name}.nii.gz"})}]
        for name, depth in depths.items()
    ]
    clock = itertools.count()  # STARTED reads the clock once, then one read per file: 1 s per file
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    engine = Engine(lambda engine, batch: None)
    InferenceProgress(inputs=inputs, use_tqdm=False, name="inference_progress_test").attach(engine)
    with caplog.at_level(logging.INFO, logger="inference_progress_test"):
        engine.run(batches, max_epochs=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "inference_progress_test"]
    # after the 1-slice file: 1 s per slice, 14 left; after the 10-slice stack: 2 s for 11 slices, 4 left
    assert lines == [
        "file 1/3 a_slice.nii.gz slices 1/15 eta 0:00:14",
        "file 2/3 b_stack.nii.gz slices 11/15 eta 0:00:01",
        "file 3/3 c_stack.nii.gz slices 15/15 eta 0:00:00",
    ]


def test_without_inputs_it_counts_files(caplog):
    engine = Engine(lambda engine, batch: None)
    InferenceProgress(use_tqdm=True, name="inference_progress_files").attach(engine)
    with caplog.at_level(logging.INFO, logger="inference_progress_files"):
        engine.run([{"image": torch.zeros(1, 1, 4, 4)}] * 2, max_epochs=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "inference_progress_files"]
    assert [line.split(" eta")[0] for line in lines] == ["file 1/2 ", "file 2/2 "]


def test_slices_are_counted_in_the_inputs_units_when_preprocessing_adds_slices(tmp_path, caplog):
    """A through-plane SR input of 5 thick slices reaches the model as 20 thin ones: progress stays 5/5, not 20/5."""
    folder = tmp_path / "thick"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 5), np.float32), np.diag([1, 1, 4, 1])), folder / "t.nii.gz")
    inputs = FolderInputs(folder, output_dir=tmp_path / "out", postfix="sr", ndim=3)
    path = inputs.datalist()[0]["image"]
    batch = [{"image": MetaTensor(torch.zeros(1, 8, 8, 20), meta={"filename_or_obj": path})}]
    engine = Engine(lambda engine, batch: None)
    InferenceProgress(inputs=inputs, use_tqdm=False, name="inference_progress_sr").attach(engine)
    with caplog.at_level(logging.INFO, logger="inference_progress_sr"):
        engine.run([batch], max_epochs=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "inference_progress_sr"]
    assert lines[-1].startswith("file 1/1 t.nii.gz slices 5/5")
