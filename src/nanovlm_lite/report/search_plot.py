"""The budgeted search at a glance: every trial's accuracy on the held-out search split
against its GFLOPs per question, rung by rung, and the study page's section that says what
the search spent and what it found.

Reads only the search's trials.csv and found.yaml (nanovlm_lite/search/result.py writes
them): no optuna, no torch, so the report job stays light. The accuracies here are on the
search split; the found point's evaluation-split numbers are in the study's main table.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
import yaml

from nanovlm_lite.report import format as fmt

RUNG_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DECISION_COLOURS = {"dropped": "tab:red", "promoted": "tab:blue", "cleared": "tab:green",
                    "short of bar": "tab:orange"}
OTHER_COLOUR = "0.5"  # a rung decision the search may add later still gets drawn


def read_trials(trials_csv) -> pd.DataFrame:
    """trials.csv with `found` and `pareto` as booleans and `x`, the GFLOPs per question the
    plot uses: the rung's measured count, or the plan's estimate where none was recorded."""
    df = pd.read_csv(trials_csv)
    for col in ("found", "pareto"):
        df[col] = fmt.is_true(df[col]) if col in df.columns else False
    df["x"] = df["gflops"].where(df["gflops"] > 0, df["gflops_estimate"])
    return df


def last_rungs(trials: pd.DataFrame) -> pd.DataFrame:
    """Each trial's row at the last rung it reached (its final word), cheapest first."""
    if trials.empty:
        return trials
    last = trials.sort_values("rung").groupby("trial", sort=False).tail(1)
    return last.sort_values(["x", "name"], kind="stable").reset_index(drop=True)


def dropped_by_rung(trials: pd.DataFrame, rungs=()) -> list[tuple[int, int, int]]:
    """(rung, its question count, trials dropped there) for every rung of the plan
    (`rungs`, the question counts) and any other the table holds."""
    sizes = dict(enumerate(rungs))
    for rung, n in zip(trials["rung"], trials["n_questions"]):
        sizes.setdefault(int(rung), int(n))
    dropped = trials[trials["rung_decision"] == "dropped"]["rung"].astype(int).value_counts()
    return [(r, sizes[r], int(dropped.get(r, 0))) for r in sorted(sizes)]


def draw_trials(trials: pd.DataFrame, threshold: float):
    """The figure (see plot_trials), returned unsaved."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    fig.subplots_adjust(left=0.09, right=0.7, bottom=0.11, top=0.9)
    ax.axhline(threshold, ls="--", color="tab:red", lw=1)
    # each trial's rungs joined by a faint line: how its interval narrowed as n grew
    for _, t in trials.sort_values("rung").groupby("trial"):
        if len(t) > 1:
            ax.plot(t["x"], t["accuracy"], color="0.8", lw=0.7, zorder=1)
    rungs = sorted(trials.groupby("rung")["n_questions"].first().items())
    decisions = list(dict.fromkeys([*DECISION_COLOURS, *trials["rung_decision"].astype(str)]))
    last_rung = max((r for r, _ in rungs), default=0)
    for (rung, _), marker in zip(rungs, RUNG_MARKERS * 4):
        alpha = 0.45 + 0.5 * (rung / last_rung if last_rung else 1)  # later rungs say more
        for decision in decisions:
            g = trials[(trials["rung"] == rung) & (trials["rung_decision"].astype(str) == decision)]
            if g.empty:
                continue
            colour = DECISION_COLOURS.get(decision, OTHER_COLOUR)
            yerr = [(g["accuracy"] - g["accuracy_low"]).clip(lower=0),
                    (g["accuracy_high"] - g["accuracy"]).clip(lower=0)]
            ax.errorbar(g["x"], g["accuracy"], yerr=yerr, fmt=marker, ms=5, color=colour,
                        ecolor=colour, elinewidth=0.8, alpha=alpha, capsize=2, zorder=3)
    if not trials.empty and (trials["x"] > 0).all():
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.08)
    found = last_rungs(trials[trials["found"]])  # a star behind its last marker
    for _, r in found.iterrows():
        ax.scatter([r["x"]], [r["accuracy"]], s=420, marker="*", color="gold",
                   edgecolors="0.1", lw=0.9, zorder=2)
    ax.set_xlabel("GFLOPs per question (search split" +
                  (", log scale)" if ax.get_xscale() == "log" else ")"))
    ax.set_ylabel("accuracy on the held-out search split")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, which="both", alpha=0.25)
    heading = (f"Search trials: {trials['trial'].nunique()} candidates raced to the "
               f"{threshold:.0%} bar\n")
    heading += f"found: {found['name'].iloc[0]}" if not found.empty else "nothing cleared the bar"
    ax.set_title(heading, fontsize=10)

    handles = [Line2D([], [], ls="--", color="tab:red", label=f"{threshold:.0%} bar")]
    handles += [Line2D([], [], ls="", marker=m, color="0.35", label=f"rung {r}: {n} questions")
                for (r, n), m in zip(rungs, RUNG_MARKERS * 4)]
    handles += [Line2D([], [], ls="", marker="o", color=DECISION_COLOURS.get(d, OTHER_COLOUR),
                       label=d) for d in decisions if (trials["rung_decision"] == d).any()]
    handles.append(Line2D([], [], ls="", marker="*", ms=13, color="gold", markeredgecolor="0.1",
                          label="found (cheapest that cleared)"))
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       borderaxespad=0, fontsize=8, title="95% Wilson interval\nas error bar",
                       title_fontsize=8)
    _label_found(ax, trials, found, legend)
    return fig


def _label_found(ax, trials, found, legend) -> None:
    """Name the found trial where its label covers no marker, bar, title or legend (the
    Pareto plot's label placement)."""
    from matplotlib.transforms import Bbox

    from nanovlm_lite.report.pareto import place_labels

    if found.empty:
        return
    fig = ax.get_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    half = 4 * fig.dpi / 72 + 1  # pixels: half a marker, plus one
    markers, bars = [], []
    for x, y, lo, hi in zip(trials["x"], trials["accuracy"], trials["accuracy_low"],
                            trials["accuracy_high"]):
        cx, cy = ax.transData.transform((x, y))
        markers.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
        (_, y0), (_, y1) = ax.transData.transform([(x, lo), (x, hi)])
        bars.append(Bbox.from_extents(cx - half / 2, y0, cx + half / 2, y1))
    obstacles = [legend.get_window_extent(renderer), ax.title.get_window_extent(renderer),
                 *markers]
    items = [(r["name"], f"{r['name']}\n{r['accuracy']:.1%} "
              f"{fmt.interval(r['accuracy_low'], r['accuracy_high'])} at {r['x']:.3g} GFLOPs",
              (r["x"], r["accuracy"]), dict(fontsize=7.5, fontweight="bold"),
              dict(arrowstyle="->", color="0.2", lw=0.8, always=True))
             for _, r in found.iterrows()]
    place_labels(ax, items, obstacles, bars, markers, say=lambda _: None)


def plot_trials(trials_csv, out_png, threshold: float) -> None:
    """Every trial's accuracy on the search split with its 95% Wilson interval against its
    GFLOPs per question: one marker per rung (question count), one colour per rung decision
    (dropped, promoted, cleared, short of bar), the bar as a dashed line, the found trial
    as a gold star. `out_png` may be a path or a binary file object."""
    import matplotlib.pyplot as plt

    fig = draw_trials(read_trials(trials_csv), threshold)
    if isinstance(out_png, (str, Path)):
        Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png")
    plt.close(fig)


_e = fmt.escape


def _count(n) -> str:
    return "?" if n is None else f"{int(n):,}"


def search_section(found_yaml, trials_csv, png_path=None) -> str:
    """The study page's account of the search (HTML): what it raced and spent, what it
    dropped where, what it found, its trials plot (drawn to `png_path` unless that file
    exists already, or in memory without one) and a table of each trial at its last rung."""
    with open(found_yaml) as f:
        found = yaml.safe_load(f) or {}
    trials = read_trials(trials_csv)
    threshold = float(found.get("threshold", 0.0))
    rungs = list(found.get("rungs") or [])

    if png_path is not None and Path(png_path).is_file():
        png = Path(png_path).read_bytes()
    else:
        buffer = io.BytesIO()
        plot_trials(trials_csv, buffer, threshold)
        png = buffer.getvalue()
        if png_path is not None:
            Path(png_path).parent.mkdir(parents=True, exist_ok=True)
            Path(png_path).write_bytes(png)

    drops = ", ".join(f"{d} at rung {r} ({n} questions)"
                      for r, n, d in dropped_by_rung(trials, rungs))
    invalid = found.get("invalid_candidates") or 0
    waiting = found.get("not_evaluated") or 0
    names = list((found.get("points") or {}))
    last = last_rungs(trials)
    if names:
        row = last[last["name"] == names[0]]
        acc = "" if row.empty else (
            f", accuracy {fmt.pct(row['accuracy'].iloc[0])} "
            f"{fmt.interval(row['accuracy_low'].iloc[0], row['accuracy_high'].iloc[0])} on "
            f"{int(row['n_questions'].iloc[0])} questions")
        gflops = found.get("found_gflops_on_search_split")
        gflops = "?" if gflops is None else f"{gflops:.4g}"
        result = (f'Found: <b><code>{_e(names[0])}</code></b>, the cheapest candidate whose '
                  f"95% lower bound cleared the bar, at {gflops} GFLOPs per question on the "
                  f"search split{acc}. It was then evaluated like any other point: its "
                  f'evaluation-split numbers are in the points table above, marked "found".')
    else:
        result = ("<b>Nothing cleared the bar</b>: no candidate's 95% lower bound reached "
                  f"{threshold:.0%} on the search split, so the study has no found point.")
    summary = (
        f"<p>The search raced {_count(found.get('candidates'))} candidates"
        f"{f' ({invalid} more had invalid settings and were left out)' if invalid else ''} "
        f"against the {threshold:.0%} bar, cheapest (by estimated GFLOPs) first, on "
        f"{_count(found.get('search_questions'))} held-out search questions in rungs of "
        f"{', '.join(map(str, rungs)) or '?'} questions. It evaluated "
        f"{_count(found.get('evaluated'))}"
        f"{f' ({waiting} never started)' if waiting else ''}; dropped {drops or 'none'}. "
        f"It spent {_count(found.get('question_evaluations'))} question-evaluations of its "
        f"budget of {_count(found.get('budget'))}.</p>\n<p>{result}</p>")

    rows = []
    for _, r in last.iterrows():
        cls = ' class="found"' if r["found"] else ""
        rows.append(
            f'<tr{cls}><td class="l">{_e(r["name"])}{" (found)" if r["found"] else ""}</td>'
            f"<td>{r['x']:.4g}</td><td>{int(r['n_questions'])}</td>"
            f"<td>{fmt.pct(r['accuracy'])}</td>"
            f"<td>{fmt.interval(r['accuracy_low'], r['accuracy_high'])}</td>"
            f'<td class="l">{_e(r["decision"])}</td></tr>')
    table = ('<table><tr><th class="l">trial (at its last rung)</th><th>GFLOPs/q</th>'
             '<th>n</th><th>accuracy</th><th>95% interval</th><th class="l">decision</th></tr>'
             + "".join(rows) + "</table>") if rows else "<p>(no trial was evaluated)</p>"
    image = base64.b64encode(png).decode("ascii")
    return f"""<h2>Search</h2>
<p><b>Every accuracy in this section is on the held-out search split, not on the
evaluation split the rest of the page reports.</b></p>
{summary}
<img src="data:image/png;base64,{image}" style="max-width: 100%;"
 alt="search trials: accuracy on the search split vs GFLOPs per question">
<p class="caption">Each marker is a trial at one rung: its accuracy on that rung's search
questions with the 95% Wilson interval, against its GFLOPs per question; marker shape is
the rung, colour what the rung decided (dropped: the interval's upper end is under the
bar; promoted: on to the next rung; at the last rung cleared, the lower end at or over the
bar, or short of it). A faint line joins a trial's rungs. Gold star: the found point.</p>
{table}
<p class="caption">Each trial at the last rung it reached; decision is its final one (a
trial left when the budget ran out says so).</p>
"""
