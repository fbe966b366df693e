"""MONAI's experiment tracking (`python -m monai.bundle run ... --tracking mlflow`) on every training config.

`--tracking mlflow` adds MONAI's default `MLFlowHandler` to `train#trainer` (the iteration loss as `train_loss`
and the epoch metrics) and `validate#evaluator` (the validation metrics). Each training config runs 1 epoch with
its tiny networks and writes to a temporary store; the tests read that store back with MLflow's client and check
that every loss term of the trainer's output (as `epoch_<term>`, `common.handlers.LossTermMeans`) and every metric
is there. The local store is an SQLite file: MONAI 1.6.1's `MLFlowHandler` refuses `file:` URIs (MLflow >= 3.13
deprecates the file store). Needs the `tracking` extra (`pip install -e ".[tracking]"`; tools/install.sh installs
it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_test_utils import BUNDLES, bundle_cli, small_dti_lge_mi, tiny_overrides
from common.handlers import loss_terms
from monai.bundle import ConfigWorkflow
from monai.utils import path_to_sqlite_uri

if os.environ.get("CI"):
    import mlflow  # noqa: F401  (CI installs the tracking extra: a missing mlflow must fail there, not skip)
else:
    pytest.importorskip("mlflow", reason="the tracking extra is not installed: pip install -e '.[tracking]'")
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = pytest.mark.slow

SSEG = BUNDLES / "lge_mi_sr_segmentation"
DTI = BUNDLES / "dti_lge_style_transfer"
SSEG_TINY = {**tiny_overrides(SSEG.name), "batch_size": 4, "num_workers": 0}
DTI_TINY = tiny_overrides(DTI.name)


def _train(bundle: Path, files: list[str], store: Path, **overrides) -> ConfigWorkflow:
    """One training run with `tracking="mlflow"` (what `--tracking mlflow` passes) into the SQLite file `store`."""
    sys.path.insert(0, str(bundle))  # the bundle's `scripts` package, as `monai.bundle run` from its root
    try:
        workflow = ConfigWorkflow(
            config_file=[str(bundle / "configs" / name) for name in files],
            meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=None,
            tracking="mlflow",
            bundle_root=str(bundle),
            tracking_uri=path_to_sqlite_uri(store),
            resume=False,
            epochs=1,
            **overrides,
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    finally:
        sys.path.remove(str(bundle))
    return workflow


def _logged(tracking_uri: str) -> dict[str, list[tuple[int, float]]]:
    """`{metric: [(step, value), ...]}` of the one run in the store (trainer and validator share it)."""
    client = MlflowClient(tracking_uri)
    runs = [run for experiment in client.search_experiments() for run in client.search_runs([experiment.experiment_id])]
    assert len(runs) == 1, f"expected one run in {tracking_uri}, found {[r.info.run_name for r in runs]}"
    run = runs[0]
    assert run.info.status == "FINISHED"
    return {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)] for key in run.data.metrics
    }


def _epoch_terms(workflow: ConfigWorkflow) -> set[str]:
    """`epoch_<term>` for every loss term of the trainer's last output."""
    output = workflow.parser.get_parsed_content("train#trainer").state.output
    terms = loss_terms(output)
    assert len(terms) > 1, f"a multi-term trainer must report its terms, got {sorted(terms)}"
    return {f"epoch_{term}" for term in terms}


@pytest.fixture(scope="module")
def dti_data(tmp_path_factory) -> Path:
    return small_dti_lge_mi(tmp_path_factory.mktemp("dti_tracking_data"))


@pytest.fixture(scope="module")
def dti_segmentor(dti_data, tmp_path_factory):
    """The Segmentor stage (`train.json` + `train_segmentor.json`) with tracking; its model feeds CycleGANSeg."""
    work = tmp_path_factory.mktemp("dti_tracking")
    _train(
        DTI,
        ["train.json", "train_segmentor.json"],
        work / "segmentor.db",
        dataset_dir=str(dti_data),
        ckpt_dir=str(work / "models"),
        output_dir=str(work / "eval" / "segmentor"),
        val_interval=1,
        **DTI_TINY,
    )
    return work


def test_dti_segmentor_logs_loss_and_dice(dti_segmentor):
    logged = _logged(path_to_sqlite_uri(dti_segmentor / "segmentor.db"))
    assert {"train_loss", "train_mean_dice", "val_mean_dice"} <= set(logged), sorted(logged)
    assert len(logged["train_loss"]) >= 1 and logged["val_mean_dice"][0][0] == 1  # step: the trainer's epoch


def test_dti_cycleganseg_logs_every_loss_term(dti_segmentor, dti_data):
    workflow = _train(
        DTI,
        ["train.json"],
        dti_segmentor / "cyclegan.db",
        dataset_dir=str(dti_data),
        ckpt_dir=str(dti_segmentor / "models"),  # holds the Segmentor trained above
        output_dir=str(dti_segmentor / "eval"),
        **DTI_TINY,
    )
    logged = _logged(path_to_sqlite_uri(dti_segmentor / "cyclegan.db"))
    expected = _epoch_terms(workflow)
    assert {"epoch_loss_g", "epoch_loss_cycle", "epoch_loss_transfer_seg", "epoch_loss_d"} <= expected
    assert expected | {"train_loss"} <= set(logged), sorted(expected - set(logged))
    assert logged["epoch_loss_transfer_seg"][0][1] > 0, "CycleGANSeg's Segmentor term must be logged, not zero"


def test_sseg_pretrain_logs_every_ssl_term(tiny_data, tmp_path):
    workflow = _train(
        SSEG,
        ["pretrain.json"],
        tmp_path / "mlruns.db",
        data_root=str(tiny_data),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "eval"),
        **SSEG_TINY,
    )
    logged = _logged(path_to_sqlite_uri(tmp_path / "mlruns.db"))
    expected = _epoch_terms(workflow)
    assert {"epoch_loss_rotation", "epoch_loss_reconstruction", "epoch_loss_contrastive"} <= expected
    assert expected | {"train_loss"} <= set(logged), sorted(expected - set(logged))


def test_sseg_train_command_line_with_monai_defaults(tiny_data, tmp_path):
    """The user's command, nothing but `--tracking mlflow`: MONAI's default store, `<output_dir>/mlruns.db`."""
    output_dir = tmp_path / "eval"
    overrides = {
        **SSEG_TINY,
        "dataset_dir": tiny_data / "DTI_LGE_MI",
        "ckpt_dir": tmp_path / "models",
        "output_dir": output_dir,
        "use_ssl_pretrained": False,
        "resume": False,
        "epochs": 1,
        "val_interval": 1,
    }
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--tracking", "mlflow"]
    proc = subprocess.run(cmd + bundle_cli(overrides), cwd=SSEG, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    database = output_dir / "mlruns.db"
    assert database.is_file(), sorted(p.name for p in output_dir.iterdir())
    logged = _logged(path_to_sqlite_uri(database))
    assert {"train_loss", "train_mean_dice", "val_mean_dice"} <= set(logged), sorted(logged)
    assert list(output_dir.glob("events.out.tfevents.*")), "TensorBoard keeps logging beside MLflow"
