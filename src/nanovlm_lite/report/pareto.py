"""The accuracy vs TFLOPs-per-question Pareto front, and its plot."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

X, Y = "tflops_per_question", "accuracy"


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
    """The cheapest row with accuracy >= threshold (the best one among equal cost), or None."""
    ok = df[df[y] >= threshold]
    if ok.empty:
        return None
    return ok.sort_values([x, y], ascending=[True, False], kind="stable").iloc[0]


def split_baselines(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(configurations, no-vision baselines): points scored on blank images are a reference
    for what the image buys, not a setting to deploy, so they join neither the front nor
    the search for the cheapest point over the bar."""
    if "blank_images" not in df.columns:
        return df, df.iloc[0:0]
    blind = df["blank_images"].eq(True)  # read_csv gives True where set, NaN elsewhere
    return df[~blind], df[blind]


def plot_pareto(summary_csv, out_png, out_svg, threshold: float = 0.65,
                title: str | None = None) -> str | None:
    """Draw accuracy vs mean TFLOPs per question (log x) with the front and the bar;
    blank-image baselines as dotted lines.

    Returns the name of the highlighted point: the cheapest one that clears `threshold`,
    or None when no point does (the title then says so).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    df = pd.read_csv(summary_csv)
    skipped = df[~(df[X] > 0)]
    if not skipped.empty:
        print(f"not plotted (no positive FLOPs count): {', '.join(map(str, skipped['point']))}")
    df = df[df[X] > 0]
    unscored = df[df[Y].isna()]  # evaluated on a split without answers (accuracy null)
    if not unscored.empty:
        print(f"not plotted (no accuracy: the split has no answers): "
              f"{', '.join(map(str, unscored['point']))}")
    df, baselines = split_baselines(df[df[Y].notna()])
    front = pareto_front(df)
    best = cheapest_passing(df, threshold)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter(df[X], df[Y], s=22, color="0.55", zorder=2, label="points")
    for _, r in df.iterrows():
        ax.annotate(str(r["point"]), (r[X], r[Y]), xytext=(4, 3), textcoords="offset points",
                    fontsize=7, color="0.4")
    ax.step(front[X], front[Y], where="post", color="tab:blue", lw=1.5, zorder=3,
            label="Pareto front")
    ax.scatter(front[X], front[Y], s=30, color="tab:blue", zorder=4)
    ax.axhline(threshold, ls="--", color="tab:red", lw=1, label=f"{threshold:.0%} bar")
    for _, r in baselines.iterrows():
        ax.axhline(r[Y], ls=":", color="0.3", lw=1.2,
                   label=f"{r['point']}: blank images ({r[Y]:.1%})")
    if best is not None:
        ax.scatter([best[X]], [best[Y]], s=140, facecolors="none", edgecolors="tab:red",
                   lw=2, zorder=5, label="cheapest over the bar")
        ax.annotate(f"{best['point']}\n{best[Y]:.1%} at {best[X]:.3g} TFLOPs",
                    (best[X], best[Y]), xytext=(12, -28), textcoords="offset points",
                    fontsize=9, fontweight="bold", color="tab:red",
                    arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax.set_xscale("log")
    ax.set_xlabel("mean TFLOPs per question (log scale)")
    ax.set_ylabel("multiple-choice accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, which="both", alpha=0.25)
    heading = title or "Accuracy vs inference FLOPs"
    if best is None:
        heading += f"\n(no point reaches {threshold:.0%})"
    ax.set_title(heading)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    for out in (out_png, out_svg):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=150)
    plt.close(fig)
    return None if best is None else str(best["point"])
