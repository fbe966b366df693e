"""Table 2's segment-level AUC compared between methods: the AHA segments of every held-out patient pooled, one score
per segment and method (``scripts.evaluate``'s ``scar_score_pred``, or a baseline's), an interval from a bootstrap over
patients (``common.benchmarking.compare_pooled_auc``), and each training seed's own difference.

``python -m scripts.benchmark`` writes ``segment_auc.json``, ``segment_auc.md`` and the per-segment scores
``segment_scores.csv`` (one column per method and seed) beside its tables.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
from common.benchmarking import compare_pooled_auc
from common.metrics import roc_auc

__all__ = ["SEGMENT_FLAGS", "SegmentKey", "segment_aucs", "compare_segment_aucs", "write_segment_auc"]

#: the true flag a segment score is ranked against -> its name in the tables (the paper's Table 2 columns)
SEGMENT_FLAGS = {"has_scar": "segment localisation AUC", "transmural": "segment transmurality AUC"}

#: (patient, slice, AHA segment number)
SegmentKey = tuple[str, int, int]


def _truth(rows: Sequence[Mapping]) -> dict[SegmentKey, dict[str, bool]]:
    """Each truth segment's flags from ``scripts.evaluate``'s segment rows."""
    return {(r["case"], int(r["slice"]), int(r["segment"])): {f: bool(r[f"{f}_true"]) for f in SEGMENT_FLAGS}
            for r in rows}  # fmt: skip


def _scores(rows: Sequence[Mapping], keys: Sequence[SegmentKey], method: str, seed: int) -> np.ndarray:
    """The rows' ``scar_score_pred`` in the order of ``keys``; refuses rows that cover other segments."""
    by_key = {(r["case"], int(r["slice"]), int(r["segment"])): float(r["scar_score_pred"]) for r in rows}
    if set(by_key) != set(keys):
        raise ValueError(
            f"{method} seed {seed}: its segment rows cover {len(by_key)} truth segments, the reference "
            f"{len(keys)}; every method must be scored on the same patients' truth segments."
        )
    return np.array([by_key[k] for k in keys], dtype=np.float64)


def segment_aucs(
    segments: Mapping[str, Mapping[int, Sequence[Mapping]]],
    baselines: Mapping[str, Mapping[SegmentKey, float]] | None = None,
) -> tuple[list[SegmentKey], dict[str, bool], dict[str, dict[int, np.ndarray]]]:
    """Align every method's segment scores on one list of truth segments.

    Args:
        segments: ``method -> seed -> scripts.evaluate's segment rows`` (``case``, ``slice``, ``segment``, the true
            flags and ``scar_score_pred``).
        baselines: ``name -> truth segment -> score`` of a method without a training seed (e.g. the scar location
            prior); it is given seed ``-1``.

    Returns:
        ``(keys, flags, scores)``: the truth segments (sorted), ``flag -> each segment's true flag``, and ``method ->
        seed -> each segment's score``.
    """
    first = next(iter(segments.values()))
    truth = _truth(next(iter(first.values())))
    keys = sorted(truth)
    flags = {f: np.array([truth[k][f] for k in keys], dtype=bool) for f in SEGMENT_FLAGS}
    scores = {m: {s: _scores(rows, keys, m, s) for s, rows in by_seed.items()} for m, by_seed in segments.items()}
    for name, by_key in (baselines or {}).items():
        rows = [{"case": k[0], "slice": k[1], "segment": k[2], "scar_score_pred": v} for k, v in by_key.items()]
        scores[name] = {-1: _scores(rows, keys, name, -1)}
    return keys, flags, scores


def compare_segment_aucs(
    keys: Sequence[SegmentKey],
    flags: Mapping[str, np.ndarray],
    scores: Mapping[str, Mapping[int, np.ndarray]],
    pairs: Sequence[tuple[str, str]],
    n_resamples: int = 10000,
) -> list[dict]:
    """One row per (ours, baseline) pair whose two methods were scored and per flag: both methods' AUC (mean over
    seeds), the comparison (difference, interval over patients, seeds, verdict)."""
    cases = [k[0] for k in keys]
    rows = []
    for ours, baseline in pairs:
        if ours not in scores or baseline not in scores:
            continue
        for flag, metric in SEGMENT_FLAGS.items():
            positive = flags[flag]
            comparison = compare_pooled_auc(
                ours, baseline, metric, cases, positive, scores[ours], scores[baseline], n_resamples=n_resamples
            )
            auc = {m: float(np.mean([roc_auc(v[positive], v[~positive]) for v in scores[m].values()]))
                   for m in (ours, baseline)}  # fmt: skip
            rows.append({**asdict(comparison), "ours_auc": auc[ours], "baseline_auc": auc[baseline],
                         "n_segments": len(keys), "n_positive": int(positive.sum())})  # fmt: skip
    return rows


def write_segment_auc(
    out_dir: str, keys: Sequence[SegmentKey], flags: Mapping[str, np.ndarray],
    scores: Mapping[str, Mapping[int, np.ndarray]], rows: Sequence[dict], note: str,
) -> str:  # fmt: skip
    """Write ``segment_scores.csv`` (per segment: true flags, each method's score per seed), ``segment_auc.json``
    and ``segment_auc.md``; returns the Markdown."""
    columns = [(m, s) for m in scores for s in sorted(scores[m])]
    with open(os.path.join(out_dir, "segment_scores.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "slice", "segment", *(f"{f}_true" for f in flags),
                         *(m if s < 0 else f"{m} seed {s}" for m, s in columns)])  # fmt: skip
        for i, key in enumerate(keys):
            writer.writerow(
                [*key, *(int(flags[f][i]) for f in flags), *(repr(float(scores[m][s][i])) for m, s in columns)]
            )
    with open(os.path.join(out_dir, "segment_auc.json"), "w") as handle:
        json.dump({"note": note, "comparisons": list(rows)}, handle, indent=2, default=float)
    lines = [
        "# PSCGAN Table 2: segment-level AUC, methods compared",
        "",
        note,
        "",
        "| ours | baseline | metric | ours AUC | baseline AUC | difference [95 % CI over patients] | seeds agreeing |"
        " verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = f"{sum(1 for _, d in r['seed_differences'] if d * r['difference'] > 0)}/{len(r['seed_differences'])}"
        lines.append(
            f"| {r['ours']} | {r['baseline']} | {r['metric']} | {r['ours_auc']:.3f} | {r['baseline_auc']:.3f} | "
            f"{r['difference']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | {seeds} | {r['verdict']} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "segment_auc.md"), "w") as handle:
        handle.write(text)
    return text
