"""The accuracy vs FLOPs-per-question plot: every point with its 95% interval, the Pareto
front, the bar, the two cheapest points over it, the points a search found (a star), and
labels that never overlap.

Labels are placed by a small deterministic search rather than numbered: a number beside
a crowded spot needs placing just as much as a name does, and a name reads at a glance.
Each label tries offsets around its point, nearest first, and takes the first whose
rendered text box (the renderer's own extent) stays inside the axes and clear of every
marker, error bar, label already placed, the title and the legend (which sits outside
the axes, off the data). A label that had to move away gets a thin leader line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from nanovlm_lite.report import format as fmt
from nanovlm_lite.report.front import (LOW, X, Y, BarPoints, bar_points, candidates,  # noqa: F401
                                       cheapest_passing, found_points, pareto_front,
                                       split_baselines)

HIGH = "accuracy_high"
RADII = (3, 8, 14, 22, 32, 44, 58, 74, 92, 112, 135, 160)  # points from the marker
LEADER_FROM = 12  # points: labels further than this from their marker get a leader line
PAD = 2.0  # pixels kept clear around every label


def _directions(n: int) -> list[float]:
    """Angles (radians) for n directions, the upper right first, then its mirror images,
    then the axis directions, then the rest in between: a fixed order, so placement is
    deterministic."""
    first = [45, -45, 135, -135, 0, 180, 90, -90]
    rest = [a for a in (22.5, -22.5, 157.5, -157.5, 67.5, -67.5, 112.5, -112.5) if n > 8]
    return [math.radians(a) for a in first + rest]


def _offsets():
    for r in RADII:
        for a in _directions(8 if r < 20 else 16):
            yield r * math.cos(a), r * math.sin(a)


def _alignment(dx: float, dy: float) -> tuple[str, str]:
    """Text alignment for an offset, so the text grows away from its point."""
    ha = "left" if dx > 0.3 * abs(dy) else "right" if dx < -0.3 * abs(dy) else "center"
    va = "bottom" if dy > 0.3 * abs(dx) else "top" if dy < -0.3 * abs(dx) else "center"
    return ha, va


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


class Label(NamedTuple):
    point: str
    text: object  # the matplotlib Text (an Annotation)
    leader: object  # its leader line (an Annotation with an arrow), or None


def _crossings(start, end, boxes) -> int:
    """How many of `boxes` the segment start -> end passes through (sampled), not counting
    a box that holds `start` (the label's own marker)."""
    n = 0
    for b in boxes:
        if b.contains(*start):
            continue
        if any(b.contains(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
               for t in (i / 24 for i in range(25))):
            n += 1
    return n


def place_labels(ax, items, obstacles, soft=(), markers=(), say=print) -> list[Label]:
    """Annotate each (point name, text, (x, y) in data coordinates, text style, leader
    style or None) in order, at the first offset whose text box fits; see the module doc.

    `obstacles` (display-coordinate Bboxes: markers, legend, title) and the labels already
    placed must stay clear; `soft` ones (error bars) and leader lines through `markers`
    (which would point at the wrong one) are weighed against distance: the offset that
    wins overlaps least, then has the least soft overlap + distance.
    """
    from matplotlib.transforms import Bbox

    fig = ax.get_figure()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-PAD)
    px_per_pt = fig.dpi / 72
    taken = list(obstacles)
    labels = []
    for point, text, xy, style, leader_style in items:
        ann = ax.annotate(text, xy, xytext=(0, 0), textcoords="offset points",
                          annotation_clip=False, **style)
        start = ax.transData.transform(xy)
        best, best_cost = None, None
        for dx, dy in _offsets():
            r = math.hypot(dx, dy)
            if best_cost is not None and best_cost[0] == 0 and best_cost[1] <= r:
                break  # offsets only get further from here: none can do better
            ha, va = _alignment(dx, dy)
            ann.set_ha(ha), ann.set_va(va)
            ann.xyann = (dx, dy)
            box = ann.get_window_extent(renderer).padded(PAD)
            hard = (box.width * box.height - _overlap(box, inside)
                    + sum(_overlap(box, t) for t in taken))
            # a little text over an error bar reads better than a long leader; a leader
            # through another marker points at the wrong one
            light = sum(_overlap(box, t) for t in soft)
            if r > LEADER_FROM:
                end = (start[0] + dx * px_per_pt, start[1] + dy * px_per_pt)
                light += 100 * _crossings(start, end, markers)
            cost = (hard, light + r)
            if best_cost is None or cost < best_cost:
                best, best_cost = (dx, dy, ha, va, box), cost
        dx, dy, ha, va, box = best
        if best_cost[0] > 0:
            say(f"plot: no free place for the label of {point}; put where it overlaps least")
        ann.set_ha(ha), ann.set_va(va)
        ann.xyann = (dx, dy)
        taken.append(Bbox(box.get_points()))
        leader = None
        if math.hypot(dx, dy) > LEADER_FROM or (leader_style and leader_style.get("always")):
            arrow = {k: v for k, v in (leader_style or {}).items() if k != "always"}
            leader = ax.annotate("", xy, xytext=(dx, dy), textcoords="offset points",
                                 annotation_clip=False,
                                 arrowprops={"arrowstyle": "-", "color": "0.45", "lw": 0.7,
                                             "shrinkA": 0, "shrinkB": 3, **arrow})
        labels.append(Label(point, ann, leader))
    return labels


class Drawn(NamedTuple):
    fig: object
    ax: object
    labels: list
    legend: object
    chosen: BarPoints
    unit: str


def draw_pareto(df: pd.DataFrame, threshold: float = 0.65, title: str | None = None,
                say=print) -> Drawn:
    """The figure for a summary table (see plot_pareto); returned unsaved, for tests."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import (FuncFormatter, LogLocator, NullFormatter,
                                   PercentFormatter)
    from matplotlib.transforms import Bbox

    chosen = bar_points(df, threshold, say)
    configs, baselines = candidates(df, say=lambda _: None)
    unit, scale = fmt.flops_unit(pd.concat([configs[X], baselines[X]]))
    has_ci = LOW in configs.columns and HIGH in configs.columns
    reference = None
    if "reference" in df.columns and df["reference"].notna().any():
        reference = str(df["reference"].dropna().iloc[0])

    def xs(frame):
        return frame[X] / scale

    fig, ax = plt.subplots(figsize=(10, 6), dpi=150)
    fig.subplots_adjust(left=0.08, right=0.68, bottom=0.1, top=0.88)
    if not configs.empty:
        yerr = None
        if has_ci:
            lo = (configs[Y] - configs[LOW]).clip(lower=0).fillna(0)
            hi = (configs[HIGH] - configs[Y]).clip(lower=0).fillna(0)
            yerr = [lo.to_numpy(), hi.to_numpy()]
        ax.errorbar(xs(configs), configs[Y], yerr=yerr, fmt="o", ms=4, color="0.5",
                    ecolor="0.72", elinewidth=1, capsize=2, zorder=2,
                    label="point (95% interval)" if has_ci else "point")
        front = pareto_front(configs)
        ax.step(xs(front), front[Y], where="post", color="tab:blue", lw=1.5, zorder=3,
                label="Pareto front")
        ax.scatter(xs(front), front[Y], s=30, color="tab:blue", zorder=4)
    ax.axhline(threshold, ls="--", color="tab:red", lw=1, label=f"{threshold:.0%} bar")
    for _, r in baselines.iterrows():
        band = ""
        if has_ci and not fmt.missing(r.get(LOW)):
            ax.axhspan(r[LOW], r[HIGH], color="0.5", alpha=0.12, lw=0)
            band = f", 95% {fmt.interval(r[LOW], r[HIGH])}"
        ax.axhline(r[Y], ls=":", color="0.3", lw=1.2,
                   label=f"{r['point']}: blank images ({r[Y]:.1%}{band})")
    rows = configs.set_index(configs["point"].astype(str))
    if reference in rows.index:
        ref = rows.loc[reference]
        ax.scatter([ref[X] / scale], [ref[Y]], s=90, marker="D", facecolors="none",
                   edgecolors="tab:green", lw=1.3, zorder=5,
                   label=f"reference for the paired tests ({reference})")
    found = found_points(configs)
    if found:
        r = rows.loc[found]
        ax.scatter(r[X] / scale, r[Y], s=170, marker="*", color="gold", edgecolors="0.2",
                   lw=0.8, zorder=5, label="found by the search")
    if chosen.estimate:
        r = rows.loc[chosen.estimate]
        ax.scatter([r[X] / scale], [r[Y]], s=150, facecolors="none", edgecolors="tab:red",
                   lw=2, zorder=6, label=f"cheapest with accuracy >= {threshold:.0%}")
    if chosen.lower_bound:
        r = rows.loc[chosen.lower_bound]
        ax.scatter([r[X] / scale], [r[Y]], s=260, marker="s", facecolors="none",
                   edgecolors="darkred", lw=1.5, zorder=6,
                   label=f"cheapest with 95% lower bound >= {threshold:.0%}")

    ax.set_xscale("log")
    _limits(ax, configs, baselines, threshold, scale, has_ci)
    # ticks at 1, 2, 5 x 10^k, written plainly (0.05, not 5 x 10^-2)
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"mean {unit} per question (log scale)")
    ax.set_ylabel("multiple-choice accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, which="both", alpha=0.25)
    heading = title or "Accuracy vs inference FLOPs"
    if chosen.estimate is None:
        heading += f"\n(no point reaches {threshold:.0%})"
    else:
        heading += (f"\ncheapest >= {threshold:.0%}: {chosen.estimate} (estimate), "
                    f"{chosen.lower_bound or 'none'} (95% lower bound)")
    ax.set_title(heading, fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: (not names[i].startswith("point"), i))
    legend = ax.legend([handles[i] for i in order], [names[i] for i in order],
                       loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                       fontsize=8)

    # what labels must keep clear of, in display coordinates
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    obstacles = [legend.get_window_extent(renderer), ax.title.get_window_extent(renderer)]
    to_px = ax.transData.transform
    px_per_pt = fig.dpi / 72
    marked = [p for p in dict.fromkeys([chosen.estimate, chosen.lower_bound]) if p]
    markers, bars = [], []
    for _, r in configs.iterrows():
        cx, cy = to_px((r[X] / scale, r[Y]))
        name = str(r["point"])
        # half the widest marker drawn there (scatter sizes are areas in points^2), + 1 px
        size = 260 if name == chosen.lower_bound else 170 if name in found else \
            150 if name == chosen.estimate else 90 if name == reference else 30
        # (a diamond's corners reach 0.71 of its size from the centre)
        half = math.sqrt(size) * (0.72 if name == reference else 0.5) * px_per_pt + 1
        obstacles.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
        markers.append(obstacles[-1])
        if has_ci and not fmt.missing(r.get(LOW)):
            _, y0 = to_px((r[X] / scale, r[LOW]))
            _, y1 = to_px((r[X] / scale, r[HIGH]))
            cap = 2 * px_per_pt + 1
            bars.append(Bbox.from_extents(cx - cap, y0 - 1, cx + cap, y1 + 1))

    items = []
    for name in marked:
        r = rows.loc[name]
        ci = f" {fmt.interval(r[LOW], r[HIGH])}" if has_ci else ""
        text = f"{name}\n{r[Y]:.1%}{ci} at {r[X] / scale:.3g} {unit}"
        items.append((name, text, (r[X] / scale, r[Y]),
                      dict(fontsize=8, fontweight="bold", color="tab:red"),
                      dict(arrowstyle="->", color="tab:red", lw=1, always=True)))
    rest = configs[~configs["point"].astype(str).isin(marked)]
    for group in same_spot(rest.sort_values([X, "point"], kind="stable"), to_px, scale):
        names = [str(r["point"]) for r in group]
        items.append((", ".join(names), ", ".join(names), (group[0][X] / scale, group[0][Y]),
                      dict(fontsize=7, color="0.3"), None))
    labels = place_labels(ax, items, obstacles, bars, markers, say)
    return Drawn(fig, ax, labels, legend, chosen, unit)


def same_spot(df: pd.DataFrame, to_px, scale: float, within_px: float = 3.0) -> list[list]:
    """Rows drawn on one spot (markers within `within_px` pixels of the group's first),
    in order: they share one label, "a, b", since separate labels could not say which
    marker is whose."""
    groups = []
    for _, r in df.iterrows():
        x, y = to_px((r[X] / scale, r[Y]))
        for g in groups:
            gx, gy = to_px((g[0][X] / scale, g[0][Y]))
            if math.hypot(x - gx, y - gy) <= within_px:
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _limits(ax, configs, baselines, threshold, scale, has_ci) -> None:
    """Axis limits with room for labels around the points (fixed before labels are placed)."""
    xs = pd.concat([configs[X], baselines[X]]) / scale
    lows = [threshold, *configs[Y], *baselines[Y]]
    highs = [threshold, *configs[Y], *baselines[Y]]
    if has_ci:
        lows += [v for v in pd.concat([configs[LOW], baselines[LOW]]) if not fmt.missing(v)]
        highs += [v for v in pd.concat([configs[HIGH], baselines[HIGH]]) if not fmt.missing(v)]
    if len(xs):
        lo, hi = math.log10(xs.min()), math.log10(xs.max())
        pad = max(0.15, 0.12 * (hi - lo))
        ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    y0, y1 = min(lows), max(highs)
    pad = 0.08 * max(y1 - y0, 0.05)
    ax.set_ylim(max(-0.02, y0 - pad), min(1.05, y1 + pad))


def plot_pareto(summary_csv, out_png, out_svg, threshold: float = 0.65,
                title: str | None = None) -> BarPoints:
    """Draw accuracy vs mean FLOPs per question (log x) from summary.csv: error bars, the
    front, the bar, blank-image baselines as dotted lines with their interval as a band.

    Returns the two cheapest points over the bar (by estimate, by 95% lower bound; None
    where no point clears it: the title then says so).
    """
    import matplotlib.pyplot as plt

    drawn = draw_pareto(pd.read_csv(summary_csv), threshold, title)
    for out in (out_png, out_svg):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        drawn.fig.savefig(out, dpi=150)
    plt.close(drawn.fig)
    return drawn.chosen
