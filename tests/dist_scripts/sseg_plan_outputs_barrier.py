"""Run by ``tests/bundles/test_bundle_sseg_dist.py`` under ``torchrun --standalone --nproc_per_node=2`` (gloo, CPU).

``common.inference.plan_outputs(shard=True)`` on every rank, with rank 1 arriving ``DELAY_S`` late (as a slow rank
would): rank 0 writes its outputs as soon as ``plan_outputs`` returns. Each rank writes ``OUT/rank<R>.json`` with
its ``share`` (input names) and ``error`` (the message of an exception raised by ``plan_outputs``, else ``None``).
Without a barrier inside ``plan_outputs`` rank 1 finds rank 0's fresh outputs and refuses to run.

Usage: ``sseg_plan_outputs_barrier.py IN_DIR OUT_DIR`` (``IN_DIR`` holds the inputs, outputs go to ``OUT_DIR/pred``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common import distributed
from common.inference import output_path, plan_outputs

__all__ = ["DELAY_S", "main"]

#: how late rank 1 calls ``plan_outputs``
DELAY_S = 2.0


def main() -> None:
    in_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    distributed.init("gloo")
    rank = distributed.rank()
    datalist = [{"image": str(path)} for path in sorted(in_dir.glob("*.nii.gz"))]
    if rank == 1:
        time.sleep(DELAY_S)
    result: dict = {"rank": rank, "share": [], "error": None}
    try:
        share = plan_outputs(datalist, out_dir / "pred", postfix="mi_x8", shard=True)
    except FileExistsError as error:
        result["error"] = str(error)
    else:
        for item in share:  # stands in for SaveImaged
            Path(output_path(item["image"], out_dir / "pred", "mi_x8")).write_bytes(b"written by rank %d" % rank)
        result["share"] = [Path(item["image"]).name for item in share]
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    distributed.barrier()
    distributed.finalize()


if __name__ == "__main__":
    main()
