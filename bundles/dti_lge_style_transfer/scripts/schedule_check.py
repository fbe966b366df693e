"""How many optimizer steps the benchmark's quick SwinSSegNets need, checked on development data.

The pipelines' LGE SwinSSegNet and DTI SSeg of ``scripts.benchmark`` (``QUICK["sseg"]``: feature size 12, depths
1/1/1/1, batch 4) are trained for each number of epochs and training seed asked for, on a DTI_LGE_MI set written with
a development data seed (never the benchmark's ``DATA_SEED``), and each is scored by MI Dice of its 512x512 masks on
that set's test split. DTI SSeg gets as many optimizer steps as the LGE one (the benchmark's rule). This is how the
benchmark's schedule was chosen (bundle docs, "Quick benchmark"); it reads no benchmark result.

Command line, from the bundle root, one thread as the benchmark's seed processes::

    OMP_NUM_THREADS=1 python -m scripts.schedule_check --out eval/schedule_check \\
        --sseg_bundle_root ../lge_mi_sr_segmentation --data_seed 1234 --seeds 0,1,2,3,4,5 --epochs 7,21

Writes ``<out>/schedule_check.{md,json}``: per segmenter, epochs and seed the optimizer steps its trainer made, the
mean test Dice and the number of test slices under 0.05 (a segmenter that predicts no MI scores 0 on every slice).
Finished trainings are reused.
"""

from __future__ import annotations

from pathlib import Path

import fire
from common.benchmarking import development_data_seed, dice_summary, write_schedule_check
from scripts import benchmark as bm


def run(out: str, sseg_bundle_root: str, data_seed: int, seeds: tuple[int, ...], epochs: tuple[int, ...]) -> list[dict]:
    """Train and score both segmenters per (epochs, seed); returns the result rows (also written as tables)."""
    data_seed = development_data_seed(data_seed, bm.DATA_SEED)
    root = Path(out).resolve()
    st = bm.Stages(root, Path(sseg_bundle_root).resolve(), bm.stage_settings(True, None), fresh=False)
    sseg = st.settings["sseg"]
    data = bm.write_benchmark_data(root / "data", data_seed=data_seed)
    split = bm.dti_lge_mi_split(bm.dti_lge_mi_cases(data), fractions=bm.SPLIT, seed=bm.SPLIT_SEED)
    shared = {"dataset_dir": str(data), "split": split}
    select = bm.DEFAULT_DTI_CHANNELS
    bm.write_lowres_lge(split["test"], root / "lge_test_64")
    bm.write_dti_inputs(split["test"], root / "dti_test", select)
    segmenters = {  # kind: (training items, test input folder, DTI channels)
        "lge": ((bm.lge_items(split["lge_train"]), bm.lge_items(split["val"])), root / "lge_test_64", None),
        "dti": (bm.dti_items(split, root / "dti_x8", select), root / "dti_test", select),
    }
    rows = []
    for kind, (items, test_inputs, channels) in segmenters.items():
        for n_epochs in epochs:
            run_epochs = n_epochs if kind == "lge" else bm.same_steps_epochs(
                sseg["batch_size"], n_epochs, len(split["lge_train"]), len(items[0]))  # fmt: skip
            schedule = {**sseg, "epochs": run_epochs, "val_interval": run_epochs}
            for seed in seeds:
                base = root / f"{kind}_seed{seed}_epochs{n_epochs}"
                steps = st.once(base / "model", "train", lambda base=base, seed=seed, schedule=schedule: bm.train_sseg(
                    st, shared, seed, schedule, items, base / "model", base / "logs", channels))  # fmt: skip
                scores = bm.score_sseg(st, test_inputs, base / "model", base / "masks", split["test"], channels)
                rows.append({  # steps read back from the trainer (None: stored by a run before they were recorded)
                    "segmenter": "LGE SwinSSegNet" if kind == "lge" else "DTI SSeg", "epochs": n_epochs,
                    "steps": steps, "seed": seed, **dice_summary(scores),
                })  # fmt: skip
    write_schedule_check(root, data_seed, rows, "MI Dice of the 512x512 masks on the test split")
    return rows


def main(
    out: str = "eval/schedule_check",
    sseg_bundle_root: str = "../lge_mi_sr_segmentation",
    data_seed: int = 1234,
    seeds: str = "0,1,2,3,4,5",
    epochs: str = "7,21",
) -> None:
    """Command line (see the module docstring)."""
    run(out, sseg_bundle_root, data_seed, bm.int_tuple(seeds), bm.int_tuple(epochs))
    print((Path(out) / "schedule_check.md").read_text())


if __name__ == "__main__":
    fire.Fire(main)
