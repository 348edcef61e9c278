"""Which points a study's answer picks: the Pareto front, the cheapest points over the bar
(by the estimate and by the interval's lower end), and the reference point."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from nanovlm_lite.report import format as fmt

X, Y = "tflops_per_question", "accuracy"
LOW = "accuracy_low"


def pareto_front(df: pd.DataFrame, x: str = X, y: str = Y) -> pd.DataFrame:
    """Rows not dominated by any other: none with <= x and >= y, strictly better in one.

    Returned sorted by x (cheapest first); ties at the same (x, y) are all kept.
    """
    keep = []
    for i, row in df.iterrows():
        dominated = ((df[x] <= row[x]) & (df[y] >= row[y])
                     & ((df[x] < row[x]) | (df[y] > row[y]))).any()
        if not dominated:
            keep.append(i)
    return df.loc[keep].sort_values([x, y], ascending=[True, False], kind="stable")


def cheapest_passing(df: pd.DataFrame, threshold: float, x: str = X, y: str = Y):
    """The cheapest row with y >= threshold (the best one among equal cost), or None."""
    ok = df[df[y].notna() & (df[y] >= threshold)]
    if ok.empty:
        return None
    return ok.sort_values([x, y, "point"], ascending=[True, False, True], kind="stable").iloc[0]


def is_blank_images(df: pd.DataFrame) -> pd.Series:
    if "blank_images" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["blank_images"].eq(True)  # read_csv gives True where set, NaN elsewhere


def found_points(df: pd.DataFrame) -> list[str]:
    """Names of the rows marked found (by the study's search) in summary.csv's `found`
    column; none when the column is absent (a study without a search)."""
    if "found" not in df.columns:
        return []
    marked = fmt.is_true(df["found"])
    return list(df.loc[marked, "point"].astype(str))


def split_baselines(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(configurations, no-vision baselines): points scored on blank images are a reference
    for what the image buys, not a setting to deploy, so they join neither the front nor
    the search for the cheapest point over the bar."""
    blind = is_blank_images(df)
    return df[~blind], df[blind]


def candidates(df: pd.DataFrame, say=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points that can answer the study's question, blank-image baselines): points with
    an accuracy (not evaluated on data without answers) and a positive FLOPs count.
    The rest are named through `say`, never silently dropped."""
    no_acc = df[df[Y].isna()]
    if not no_acc.empty:
        say(f"left out of the front and the bar (no accuracy: evaluated on data without "
            f"answers): {', '.join(map(str, no_acc['point']))}")
    no_flops = df[df[Y].notna() & ~(df[X] > 0)]
    if not no_flops.empty:
        say(f"left out of the front and the bar (no positive FLOPs count): "
            f"{', '.join(map(str, no_flops['point']))}")
    return split_baselines(df[df[Y].notna() & (df[X] > 0)])


class BarPoints(NamedTuple):
    """The cheapest configuration whose accuracy estimate clears the bar, and the cheapest
    whose 95% interval's lower end clears it (None where no point does)."""
    estimate: str | None
    lower_bound: str | None


def bar_points(df: pd.DataFrame, threshold: float, say=print) -> BarPoints:
    configs, _ = candidates(df, say)
    by_estimate = cheapest_passing(configs, threshold)
    by_lower = cheapest_passing(configs, threshold, y=LOW) if LOW in configs.columns else None
    return BarPoints(None if by_estimate is None else str(by_estimate["point"]),
                     None if by_lower is None else str(by_lower["point"]))


def bar_marks(df: pd.DataFrame, threshold: float, say=print) -> pd.Series:
    """Per row: "estimate", "lower bound", "estimate, lower bound" or "" (the bar_points)."""
    chosen = bar_points(df, threshold, say)

    def mark(point):
        return ", ".join(label for label, name in (("estimate", chosen.estimate),
                                                   ("lower bound", chosen.lower_bound))
                         if name == point)

    return df["point"].astype(str).map(mark)


def format_bar(chosen: BarPoints, threshold: float) -> str:
    """Two lines naming both answers to the study's question."""
    return (f"cheapest point with accuracy >= {threshold:.1%}: {chosen.estimate or 'none'}\n"
            f"cheapest point whose 95% lower bound >= {threshold:.1%}: "
            f"{chosen.lower_bound or 'none'}")


def is_plain(df: pd.DataFrame) -> pd.Series:
    """Plain points: the model evaluated as it is, neither fine-tuned (a `finetune`
    recipe), width-pruned (a `prune_*` ratio below 1) nor a blank-image baseline. The
    default reference is the most expensive one."""
    finetuned = (df["finetune"].notna() & (df["finetune"].astype(str) != "")
                 if "finetune" in df.columns else pd.Series(False, index=df.index))
    pruned = pd.Series(False, index=df.index)
    for column in ("prune_vit_mlp", "prune_lm_mlp"):  # settings.PRUNE_SETTINGS
        if column in df.columns:
            pruned |= pd.to_numeric(df[column], errors="coerce").lt(1.0)
    return ~finetuned & ~pruned & ~is_blank_images(df)


def choose_reference(df: pd.DataFrame, name: str | None = None) -> str | None:
    """The point every other is compared with: `name` (the config's `reference_point`),
    or the most expensive plain point with an accuracy; None when there is no such point."""
    if name is not None:
        if name not in set(df["point"].astype(str)):
            raise ValueError(f"config: reference_point {name!r} is not a point of this study "
                             f"(points: {', '.join(map(str, df['point']))})")
        if df.loc[df["point"].astype(str) == name, Y].isna().all():
            raise ValueError(f"config: reference_point {name!r} has no accuracy (evaluated on "
                             "data without answers), so nothing can be compared with it")
        return name
    plain = df[is_plain(df) & df[Y].notna()]
    if plain.empty:
        return None
    return str(plain.sort_values([X, "point"], ascending=[False, True], kind="stable")
               .iloc[0]["point"])
