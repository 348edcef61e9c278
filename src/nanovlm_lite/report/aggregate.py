"""One row per point: accuracy with its interval, the paired comparison with the reference
point, FLOPs, and the settings that made them."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from nanovlm_lite.evaluate.stats import paired_difference
from nanovlm_lite.report import format as fmt
from nanovlm_lite.report.front import bar_marks, bar_points, choose_reference, format_bar
from nanovlm_lite.report.recovery import format_recovery, recovery_table
from nanovlm_lite.settings import PointSettings

FLOPS_COLUMNS = ("tflops_per_question", "vision_tflops", "projector_tflops", "lm_tflops",
                 "measured_tflops")

PROVENANCE = ("max_samples", "seed")  # numbers in metrics.json that are not results

PAIRED_COLUMNS = ("accuracy_diff", "accuracy_diff_low", "accuracy_diff_high", "mcnemar_p",
                  "reference")

FIRST = ("point", "accuracy", "accuracy_low", "accuracy_high", "n_questions", "n_correct",
         *PAIRED_COLUMNS, "cheapest_over_bar", "found", *FLOPS_COLUMNS)


def _load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _cell(value):
    """Settings values as CSV cells: lists become compact strings."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def type_slug(question_type: str) -> str:
    """A question type as part of a column name: "yes/no" -> "yes_no"."""
    return re.sub(r"[^0-9a-z]+", "_", str(question_type).lower()).strip("_") or "other"


def _type_columns(metrics: dict) -> dict:
    """accuracy_<type>, accuracy_<type>_low / _high, n_<type> for each question type."""
    out = {}
    lows = metrics.get("accuracy_by_type_low") or {}
    highs = metrics.get("accuracy_by_type_high") or {}
    counts = metrics.get("n_by_type") or {}
    for t, acc in (metrics.get("accuracy_by_type") or {}).items():
        s = type_slug(t)
        out[f"accuracy_{s}"] = acc
        out[f"accuracy_{s}_low"] = lows.get(t)
        out[f"accuracy_{s}_high"] = highs.get(t)
        out[f"n_{s}"] = counts.get(t)
    return out


def _is_metric(key: str, value) -> bool:
    """A number, or an accuracy (or its bound) that is None for data without answers."""
    if value is None:
        return "accuracy" in key
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _code_version(metrics: dict):
    code = metrics.get("code") or {}
    commit = code.get("git_commit")
    sha = code.get("source_sha256")
    if not (commit or sha):
        return None
    return f"{(commit or 'no-git')[:12]}+src:{sha}" if sha else commit[:12]


def read_correctness(records_path) -> dict:
    """{question_id: answered correctly} from a point's records.jsonl; a record with an
    error counts as wrong, as it does in the accuracy."""
    out = {}
    with open(records_path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["question_id"]] = bool(r.get("correct")) and "error" not in r
    return out


def paired_columns(df: pd.DataFrame, records: dict, reference: str | None, say=print) -> pd.DataFrame:
    """Each point against `reference` on the questions both answered (matched by
    question_id): difference, its paired bootstrap interval, the exact McNemar p-value."""
    cols = {c: [None] * len(df) for c in PAIRED_COLUMNS}
    if reference is None:
        say("no reference point (no plain point with an accuracy): no paired comparisons")
        return df.assign(**cols)
    ref = records[reference]
    for i, (point, acc) in enumerate(zip(df["point"], df["accuracy"])):
        cols["reference"][i] = reference
        if acc is None or pd.isna(acc):
            continue
        ours = records[point]
        common = [q for q in ref if q in ours]
        if len(common) != len(ref) or len(common) != len(ours):
            say(f"point {point}: {len(common)} questions in common with the reference "
                f"{reference} ({len(ours)} vs {len(ref)}); compared on those")
        paired = paired_difference([ours[q] for q in common], [ref[q] for q in common])
        cols["accuracy_diff"][i] = paired["difference"]
        cols["accuracy_diff_low"][i] = paired["low"]
        cols["accuracy_diff_high"][i] = paired["high"]
        cols["mcnemar_p"][i] = paired["p_value"]
    return df.assign(**cols)


def aggregate(metrics_paths, flops_paths, out_csv, records_paths=None,
              reference: str | None = None, threshold: float | None = None,
              found=(), recovery_csv=None) -> pd.DataFrame:
    """Join each point's metrics.json and flops.json (paired by position) into out_csv.

    Columns: point, accuracy and its 95% interval, n_questions, n_correct; with
    `records_paths` (each point's records.jsonl) the paired comparison with the reference
    point (`reference`, or the most expensive plain point); with `threshold` which point is
    the cheapest over the bar (by estimate, by lower bound); `found`, True for the points
    named in `found` (those the study's search found, so the table and the plot can tell
    them from hand-listed ones); with `recovery_csv` (and records) the recovery table
    (report/recovery.py: fine-tuned and distilled points against their cut and each other);
    the FLOPs columns, the other scalar metrics
    (direct-answer accuracy with its interval, ...), accuracy per question type with its
    interval, the prompt template and code version, `settings` (the changed settings as
    JSON) and one column per changed setting across the study. Rows are sorted by TFLOPs
    per question.
    """
    metrics_paths, flops_paths = list(metrics_paths), list(flops_paths)
    records = {}
    if len(metrics_paths) != len(flops_paths):
        raise ValueError(f"{len(metrics_paths)} metrics files but {len(flops_paths)} FLOPs files")
    records_paths = None if records_paths is None else list(records_paths)
    if records_paths is not None and len(records_paths) != len(metrics_paths):
        raise ValueError(f"{len(metrics_paths)} metrics files but {len(records_paths)} records files")
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
               "accuracy_low": metrics.get("accuracy_low"),
               "accuracy_high": metrics.get("accuracy_high"),
               "n_questions": metrics["n_questions"]}
        row.update({c: flops.get(c) for c in FLOPS_COLUMNS})
        row.update({k: v for k, v in metrics.items()  # other metrics, e.g. direct answers
                    if k not in row and k not in PROVENANCE
                    and _is_metric(k, v)})
        row.update(_type_columns(metrics))
        row["prompt_template"] = metrics.get("prompt_template")
        row["code_version"] = _code_version(metrics)
        row["settings"] = json.dumps(changed, sort_keys=True)
        for key, value in changed.items():
            row[key] = _cell(value)
            if key not in setting_columns:
                setting_columns.append(key)
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["tflops_per_question", "point"], kind="stable").reset_index(drop=True)
        if records_paths is not None:
            records = {_load(m)["point"]: read_correctness(r)
                       for m, r in zip(metrics_paths, records_paths)}
            df = paired_columns(df, records, choose_reference(df, reference))
        if threshold is not None:
            df["cheapest_over_bar"] = bar_marks(df, threshold)
        found = {found} if isinstance(found, str) else {str(p) for p in found}
        names = df["point"].astype(str)
        if found - set(names):
            print(f"warning: found by the search but not among the points: "
                  f"{', '.join(sorted(found - set(names)))}")
        df["found"] = names.isin(found)
        # the headline numbers first, settings columns last
        first = [c for c in FIRST if c in df.columns]
        rest = [c for c in df.columns if c not in first and c not in setting_columns]
        df = df[first + rest + setting_columns]
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    print(format_summary(df))
    if recovery_csv is not None:
        if records_paths is None:
            raise ValueError("the recovery table compares answers question by question: "
                             "it needs records_paths")
        table = recovery_table(df, records)
        table.to_csv(recovery_csv, index=False)
        print("\nCompress and recover (report/recovery.py):\n" + format_recovery(table))
    if threshold is not None and not df.empty:
        print(format_bar(bar_points(df, threshold, say=lambda _: None), threshold))
    return df


def format_summary(df: pd.DataFrame) -> str:
    """A short fixed-width table: point, accuracy [95% interval], the difference from the
    reference (percentage points) with its McNemar p, FLOPs per question, settings."""
    if df.empty:
        return "(no points)"
    unit, scale = fmt.flops_unit(df["tflops_per_question"])
    paired = "accuracy_diff" in df.columns and df["accuracy_diff"].notna().any()
    ref = df["reference"].dropna().iloc[0] if paired else None
    head = f"{'point':<24} {'accuracy':>8} {'95% interval':>14}"
    if paired:
        head += f" {'vs ' + ref:>14} {'p':>7}"
    lines = [head + f" {unit + '/q':>10}  settings"]
    for _, r in df.iterrows():
        line = (f"{str(r['point']):<24} {fmt.pct(r['accuracy']):>8} "
                f"{fmt.interval(r.get('accuracy_low'), r.get('accuracy_high')):>14}")
        if paired:
            line += f" {fmt.points_diff(r['accuracy_diff']):>14} {fmt.p_value(r['mcnemar_p']):>7}"
        flops = r["tflops_per_question"]
        flops = "-" if fmt.missing(flops) else f"{flops / scale:.4g}"
        lines.append(line + f" {flops:>10}  {r.get('settings', '')}")
    if paired:
        lines.append(f"(vs {ref}: accuracy difference in percentage points; p: exact McNemar)")
    return "\n".join(lines)
