"""Compress and recover: what training won back at each cut, question by question.

A point that names a `finetune` recipe recovers the study's point with the same settings and
no recipe (its cut): `vit-1-ft` and `vit-1-kd` recover `vit-1`, `prune-0.5-kd` recovers
`prune-0.5`. For each cut this table compares every recovered point with the cut, and the
recovered points with each other (plain fine-tuning against distillation at equal steps),
with the same paired statistics as the summary's comparison with the reference.
"""
from __future__ import annotations

import json
from itertools import combinations

import pandas as pd

from nanovlm_lite.evaluate.stats import paired_difference

COLUMNS = ("cut", "point", "recipe", "against", "accuracy", "against_accuracy", "diff",
           "diff_low", "diff_high", "mcnemar_p", "n_questions")


def _without_recipe(settings: dict) -> str:
    return json.dumps({k: v for k, v in settings.items() if k != "finetune"}, sort_keys=True)


def _settings(df: pd.DataFrame) -> dict[str, dict]:
    """{point: its changed settings}, from summary.csv's `settings` column (JSON); none
    for an empty table or one without the column."""
    if df.empty or "settings" not in df.columns:
        return {}
    return {str(p): json.loads(s) if isinstance(s, str) and s else {}
            for p, s in zip(df["point"], df["settings"])}


def recovery_groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """{cut point: the points that recover it}, from summary.csv's `settings` column (the
    changed settings as JSON); cuts without a recovered point are left out."""
    return _groups(df, _settings(df))


def _groups(df: pd.DataFrame, settings: dict[str, dict]) -> dict[str, list[str]]:
    found = (dict(zip(df["point"].astype(str), df["found"].fillna(False).astype(bool)))
             if "found" in df.columns else {})
    cuts = {}
    # a hand-listed point is the cut before a search's point of the same settings
    for point in sorted(settings, key=lambda p: found.get(p, False)):
        if "finetune" not in settings[point]:
            cuts.setdefault(_without_recipe(settings[point]), point)
    groups: dict[str, list[str]] = {}
    for point, s in settings.items():
        cut = cuts.get(_without_recipe(s)) if "finetune" in s else None
        if cut is not None:
            groups.setdefault(cut, []).append(point)
    return groups


def recovery_table(df: pd.DataFrame, records: dict[str, dict]) -> pd.DataFrame:
    """One row per comparison: each recovered point against its cut, then each pair of
    points recovering the same cut (the later name against the earlier). `records` maps a
    point to {question_id: correct}; compared on the questions both answered."""
    settings = _settings(df)
    groups = _groups(df, settings)
    if not groups:
        return pd.DataFrame(columns=list(COLUMNS))
    recipes = {point: s.get("finetune") for point, s in settings.items()}
    accuracy = dict(zip(df["point"].astype(str), df["accuracy"]))

    def row(cut, point, against):
        ours, theirs = records[point], records[against]
        common = [q for q in theirs if q in ours]
        paired = paired_difference([ours[q] for q in common], [theirs[q] for q in common])
        return {"cut": cut, "point": point, "recipe": recipes[point], "against": against,
                "accuracy": accuracy[point], "against_accuracy": accuracy[against],
                "diff": paired["difference"], "diff_low": paired["low"],
                "diff_high": paired["high"], "mcnemar_p": paired["p_value"],
                "n_questions": len(common)}

    rows = []
    for cut, recovered in groups.items():
        rows += [row(cut, point, cut) for point in recovered]
        rows += [row(cut, b, a) for a, b in combinations(sorted(recovered), 2)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_recovery(table: pd.DataFrame) -> str:
    """The table as fixed-width text for the aggregate log."""
    if table.empty:
        return "(no point recovers a cut: no point names a finetune recipe at another point's settings)"
    lines = [f"{'point':<28} {'recipe':<18} {'against':<28} {'diff':>7} {'p':>9}"]
    for _, r in table.iterrows():
        lines.append(f"{r['point']:<28} {str(r['recipe']):<18} {r['against']:<28} "
                     f"{100 * r['diff']:>+6.1f} {r['mcnemar_p']:>9.2g}")
    return "\n".join(lines)
