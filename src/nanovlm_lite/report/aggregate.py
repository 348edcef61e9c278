"""One row per point: accuracy, FLOPs and the settings that made them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nanovlm_lite.settings import PointSettings

FLOPS_COLUMNS = ("tflops_per_question", "vision_tflops", "projector_tflops", "lm_tflops",
                 "measured_tflops")

PROVENANCE = ("max_samples", "seed")  # numbers in metrics.json that are not results


def _load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _cell(value):
    """Settings values as CSV cells: lists become compact strings."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def aggregate(metrics_paths, flops_paths, out_csv) -> pd.DataFrame:
    """Join each point's metrics.json and flops.json (paired by position) into out_csv.

    Columns: point, accuracy, n_questions, the FLOPs columns, any other scalar metric
    (e.g. direct-answer accuracy), `settings` (the changed settings as JSON) and one
    column per changed setting across the study. Rows are sorted by TFLOPs per question.
    """
    metrics_paths, flops_paths = list(metrics_paths), list(flops_paths)
    if len(metrics_paths) != len(flops_paths):
        raise ValueError(f"{len(metrics_paths)} metrics files but {len(flops_paths)} FLOPs files")
    rows, setting_columns = [], []
    for m_path, f_path in zip(metrics_paths, flops_paths):
        metrics, flops = _load(m_path), _load(f_path)
        point = metrics["point"]
        if flops.get("point", point) != point:
            raise ValueError(f"{m_path} is point {point!r} but {f_path} is {flops['point']!r}")
        if flops.get("n_questions", metrics["n_questions"]) != metrics["n_questions"]:
            print(f"warning: point {point}: metrics count {metrics['n_questions']} questions, "
                  f"FLOPs {flops['n_questions']}")
        changed = PointSettings.from_dict(metrics.get("settings"), where=str(m_path)).changed()
        row = {"point": point, "accuracy": metrics["accuracy"],
               "n_questions": metrics["n_questions"]}
        row.update({c: flops.get(c) for c in FLOPS_COLUMNS})
        row.update({k: v for k, v in metrics.items()  # other metrics, e.g. direct answers
                    if k not in row and k not in PROVENANCE
                    and isinstance(v, (int, float)) and not isinstance(v, bool)})
        row["settings"] = json.dumps(changed, sort_keys=True)
        for key, value in changed.items():
            row[key] = _cell(value)
            if key not in setting_columns:
                setting_columns.append(key)
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["tflops_per_question", "point"], kind="stable").reset_index(drop=True)
        # settings columns last, so the numbers read first
        df = df[[c for c in df.columns if c not in setting_columns] + setting_columns]
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    print(format_summary(df))
    return df


def format_summary(df: pd.DataFrame) -> str:
    """A short fixed-width table: point, accuracy, TFLOPs per question, settings."""
    if df.empty:
        return "(no points)"
    lines = [f"{'point':<24} {'accuracy':>8} {'TFLOPs/q':>9}  settings"]
    for _, r in df.iterrows():
        accuracy = ("-" if pd.isna(r["accuracy"]) else f"{r['accuracy']:.2%}")  # no answers
        lines.append(f"{str(r['point']):<24} {accuracy:>8} "
                     f"{r['tflops_per_question']:>9.4f}  {r.get('settings', '')}")
    return "\n".join(lines)
