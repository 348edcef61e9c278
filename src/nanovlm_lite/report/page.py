"""The study on one HTML page a reviewer can check: the plot, the answer to the study's
question both ways, the table of points (settings, FLOPs by component, accuracy with its
interval, the paired comparison with the reference, per question type), the parity check,
the prompt templates, the dataset and the code that made every number. `snakemake
--report` shows it beside the plot and summary.csv."""
from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import pandas as pd

from nanovlm_lite.report import format as fmt
from nanovlm_lite.report.front import bar_points, format_bar, found_points, is_blank_images
from nanovlm_lite.report.search_plot import search_section

CSS = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 12.5px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.ref td { font-weight: bold; } tr.blind td { color: #777; font-style: italic; }
tr.bar td:first-child { color: #c0392b; font-weight: bold; }
tr.found td:first-child { color: #8a6d00; font-weight: bold; }
.caption { color: #555; max-width: 60em; margin: 0.2em 0 1.2em; }
pre { background: #f6f6f6; padding: 0.5em; white-space: pre-wrap; max-width: 60em; }
.ok { color: #1e7b34; font-weight: bold; } .bad { color: #c0392b; font-weight: bold; }
"""


_e = fmt.escape


def _sha256(path) -> str | None:
    if not path or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _types(df: pd.DataFrame) -> list[str]:
    """Question-type slugs with per-type accuracy columns (accuracy_<t>_low exists)."""
    return [m.group(1) for c in df.columns
            if (m := re.fullmatch(r"accuracy_(.+)_low", c)) and m.group(1) not in
            {"diff", "by_type"} and f"accuracy_{m.group(1)}" in df.columns
            and not c.startswith("direct_answer")]


def _svg(path) -> str:
    text = Path(path).read_text()
    return text[text.index("<svg"):] if "<svg" in text else ""


def points_table(df: pd.DataFrame, threshold: float) -> str:
    unit, scale = fmt.flops_unit(df["tflops_per_question"])
    chosen = bar_points(df, threshold, say=lambda _: None)
    types = _types(df)
    paired = "accuracy_diff" in df.columns and df["accuracy_diff"].notna().any()
    ref = str(df["reference"].dropna().iloc[0]) if paired else None
    da = "direct_answer_accuracy" in df.columns and df["direct_answer_accuracy"].notna().any()
    head = ["point", "settings", f"{unit}/q", "vision", "projector", "LM", "measured",
            "n", "accuracy", "95% interval"]
    if paired:
        head += [f"vs {ref} (pts)", "95% interval", "McNemar p"]
    head += [f"{t}" for t in types]
    if da:
        head += ["direct answer", "95% interval"]
    head += ["over the bar"]
    blind = is_blank_images(df)
    found = set(found_points(df))
    rows = []
    for i, r in df.iterrows():
        def flops(col):
            v = r.get(col)
            return "-" if fmt.missing(v) else f"{v / scale:.4g}"
        is_found = str(r["point"]) in found
        cells = [f'<td class="l">{_e(r["point"])}{" (found)" if is_found else ""}</td>',
                 f'<td class="l"><code>{_e(r.get("settings", ""))}</code></td>',
                 *(f"<td>{flops(c)}</td>" for c in ("tflops_per_question", "vision_tflops",
                                                    "projector_tflops", "lm_tflops",
                                                    "measured_tflops")),
                 f"<td>{_e(r.get('n_questions'))}</td>",
                 f"<td>{fmt.pct(r['accuracy'])}</td>",
                 f"<td>{fmt.interval(r.get('accuracy_low'), r.get('accuracy_high'))}</td>"]
        if paired:
            cells += [f"<td>{fmt.points_diff(r['accuracy_diff'])}</td>",
                      f"<td>{_diff_interval(r)}</td>",
                      f"<td>{fmt.p_value(r['mcnemar_p'])}</td>"]
        for t in types:
            cells.append(f"<td>{fmt.pct(r[f'accuracy_{t}'])} "
                         f"{fmt.interval(r[f'accuracy_{t}_low'], r[f'accuracy_{t}_high'], 0)}</td>")
        if da:
            cells += [f"<td>{fmt.pct(r.get('direct_answer_accuracy'))}</td>",
                      f"<td>{fmt.interval(r.get('direct_answer_accuracy_low'), r.get('direct_answer_accuracy_high'))}</td>"]
        mark = ", ".join(label for label, name in (("estimate", chosen.estimate),
                                                   ("lower bound", chosen.lower_bound))
                         if name == str(r["point"]))
        cells.append(f'<td class="l">{_e(mark or ("blank-image baseline" if blind[i] else ""))}</td>')
        cls = ("ref" if str(r["point"]) == ref else "") + (" blind" if blind[i] else "") + \
            (" bar" if mark else "") + (" found" if is_found else "")
        rows.append(f'<tr class="{cls.strip()}">' + "".join(cells) + "</tr>")
    th = "".join(f'<th class="{"l" if h in ("point", "settings", "over the bar") else ""}">'
                 f"{_e(h)}</th>" for h in head)
    return f"<table><tr>{th}</tr>{''.join(rows)}</table>"


def _diff_interval(r) -> str:
    return _points_interval(r.get("accuracy_diff_low"), r.get("accuracy_diff_high"))


def _points_interval(lo, hi) -> str:
    """A difference's interval in percentage points, "-" where it is missing."""
    if fmt.missing(lo) or fmt.missing(hi):
        return "-"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def recovery_section(recovery_csv) -> str:
    """The compress-and-recover comparisons (report/recovery.py), or "" when there are none."""
    if not recovery_csv:
        return ""
    table = pd.read_csv(recovery_csv)
    if table.empty:
        return ""
    head = ["point", "recipe", "against", "accuracy", "against's", "difference (pts)",
            "95% interval", "McNemar p"]
    rows = "".join(
        f'<tr><td class="l">{_e(r["point"])}</td><td class="l">{_e(r["recipe"])}</td>'
        f'<td class="l">{_e(r["against"])}</td><td>{fmt.pct(r["accuracy"])}</td>'
        f'<td>{fmt.pct(r["against_accuracy"])}</td><td>{fmt.points_diff(r["diff"])}</td>'
        f'<td>{_points_interval(r["diff_low"], r["diff_high"])}</td>'
        f'<td>{fmt.p_value(r["mcnemar_p"])}</td></tr>' for _, r in table.iterrows())
    th = "".join(f'<th class="{"l" if h in ("point", "recipe", "against") else ""}">{_e(h)}</th>'
                 for h in head)
    return f"""<h2>Compress and recover</h2>
<table><tr>{th}</tr>{rows}</table>
<p class="caption">Each point that names a fine-tuning recipe, against its cut (the point
with the same settings and no recipe), and the recovered points of one cut against each
other (e.g. plain fine-tuning against distillation at equal steps): the difference in
percentage points on the same questions, its 95% paired bootstrap interval and the exact
McNemar p-value. A distilled point's teacher is paid once per study (its training.json).</p>
"""


def _parity_section(parity_path, upstream: dict | None) -> str:
    if not parity_path:
        return ("<p>No parity check in this study (<code>upstream.enabled: false</code>), so "
                "nothing here compares the engine with upstream nanoVLM's own code on this "
                "model (the offline demo's model is not upstream's checkpoint). The test suite "
                "checks the engine against a fixture made with upstream's code "
                "(<code>tests/test_parity.py</code>).</p>")
    report = json.loads(Path(parity_path).read_text())
    cases = report.get("cases", [])
    worst = max((c.get("logits_max_abs_diff") or 0.0 for c in cases), default=None)
    tiles = max((c.get("tiles_max_abs_diff") or 0.0 for c in cases), default=None)
    verdict = '<span class="ok">passed</span>' if report.get("ok") else '<span class="bad">FAILED</span>'
    pin = f" at commit <code>{_e((upstream or {}).get('commit'))}</code>" if upstream else ""
    return (f"<p>Our engine against upstream nanoVLM's own code{pin} on the real checkpoint: "
            f"{verdict} on {len(cases)} questions (tolerance {report.get('tolerance')}): same "
            f"input ids, grids and greedy tokens in {sum(bool(c.get('ok')) for c in cases)} of "
            f"{len(cases)}; largest logit difference {worst:.2e}, largest tile difference "
            f"{tiles:.2e}.</p>")


# The environment block's fields, in the order the page shows them (environment.py)
ENVIRONMENT_FIELDS = ("python", "torch", "transformers", "tokenizers", "numpy", "pillow",
                      "safetensors", "lock_sha256", "lock_differs", "device", "gpu", "cpu",
                      "torch_cpu_capability", "torch_threads")


def environment_section(metrics: list[dict]) -> str:
    """One column per distinct environment the points' evaluations ran in (usually one),
    one row per field, the points under each; a note when they differ."""
    envs = []
    for m in metrics:
        e = m.get("environment")
        if e is None:
            continue
        key = tuple(json.dumps(e.get(f), sort_keys=True) for f in ENVIRONMENT_FIELDS)
        for entry in envs:
            if entry[0] == key:
                entry[1].append(m["point"])
                break
        else:
            envs.append((key, [m["point"]], e))
    if not envs:
        return "<p>(no environment recorded: metrics made before it was)</p>"
    head = "".join(f'<th class="l">{_e(", ".join(points))}</th>' for _, points, _ in envs)

    def cell(e, field):
        v = e.get(field)
        if field == "lock_sha256" and v:
            v = v[:16]
        if field == "lock_differs" and v is not None:
            v = ", ".join(f"{k} {w}" for k, w in v.items()) or "none"
        return f'<td class="l"><code>{_e(v)}</code></td>'
    rows = "".join(f'<tr><td class="l">{_e(f)}</td>' + "".join(cell(e, f) for *_, e in envs)
                   + "</tr>" for f in ENVIRONMENT_FIELDS)
    note = ("" if len(envs) == 1 else '<p class="bad">The points were evaluated in different '
            "environments: compare their digits with care (docs/environment.md).</p>")
    if any(e.get("shards_differ") for *_, e in envs):
        note += ('<p class="bad">Some point\'s shards ran in different environments (its '
                 "metrics.json lists them under <code>environment.shards_differ</code>).</p>")
    return (f'<table><tr><th class="l">points</th>{head}</tr>{rows}</table>{note}')


def write_page(summary_csv, svg_path, out_html, threshold: float, metrics_paths=(),
               study: str = "", model: str = "", dataset: dict | None = None,
               data_path=None, parity_path=None, upstream: dict | None = None,
               found_yaml=None, trials_csv=None, trials_png=None, recovery_csv=None) -> Path:
    """The study page at out_html. With the search's found.yaml and trials.csv (and where
    to draw or find its trials plot, `trials_png`) it adds the search's section after the
    points table; the points table marks found points either way. With the aggregate's
    recovery.csv it adds the compress-and-recover comparisons when there are any."""
    df = pd.read_csv(summary_csv)
    search = ""
    if found_yaml and trials_csv:
        search = search_section(found_yaml, trials_csv, trials_png)
    star = found_note = ""
    if found_points(df):
        star = " Gold star: a point the study's search found."
        found_note = (' "(found)" after a name: a point the study\'s search found, evaluated '
                      "here like the others" + (" (the search is below)." if search else "."))
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    chosen = bar_points(df, threshold, say=lambda _: None)
    n = sorted({m.get("n_questions") for m in metrics} - {None})
    dataset = dict(dataset or {})
    if dataset.get("build") == "easyvqa":
        source = ("the demo dataset, built offline from the <code>easy-vqa</code> package "
                  f"(PyPI, version pinned in pyproject.toml) with seed {_e(dataset.get('seed'))}")
    elif dataset.get("build") == "scenes":
        source = ("the demo dataset of generated scenes (<code>nanovlm_lite/data/scenes.py</code>, "
                  f"seed {_e(dataset.get('seed'))})")
    else:
        source = (f"dataset <code>{_e(dataset.get('repo'))}</code>, split <code>{_e(dataset.get('split'))}"
                  f"</code>, revision <code>{_e(dataset.get('revision') or 'main (not pinned)')}</code>")
    sha = _sha256(data_path)
    ref = str(df["reference"].dropna().iloc[0]) if "reference" in df.columns and \
        df["reference"].notna().any() else None

    prompts = {}
    for m in metrics:
        prompts.setdefault((m.get("prompt_template"), m.get("prompt_text")), []).append(m["point"])
    prompt_html = "".join(
        f"<p><b>{_e(name)}</b> (points: {_e(', '.join(points))})</p><pre>{_e(text)}</pre>"
        for (name, text), points in prompts.items())
    codes = {}
    for m in metrics:
        c = m.get("code") or {}
        key = tuple(c.get(k) for k in ("nanovlm_lite", "git_commit", "source_sha256", "torch",
                                        "transformers", "python"))
        codes.setdefault(key, []).append(m["point"])
    code_rows = "".join(
        "<tr>" + "".join(f'<td class="l"><code>{_e(v)}</code></td>' for v in key)
        + f'<td class="l">{_e(", ".join(points))}</td></tr>' for key, points in codes.items())
    sources = {key[2] for key in codes}
    code_note = ("" if len(codes) <= 1 else
                 '<p class="bad">The points were evaluated by different package source.</p>'
                 if len(sources) > 1 else
                 "<p>The points' metrics were made at different commits or library versions"
                 " from the same package source.</p>")
    bar_text = html.escape(format_bar(chosen, threshold)).replace("\n", "<br>")

    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>nanoVLM-Lite: {_e(study)}</title><style>{CSS}</style></head><body>
<h1>nanoVLM-Lite study <code>{_e(study)}</code></h1>
<p>Model <code>{_e(model)}</code>; {len(df)} configuration points, each on the same
{_e(', '.join(map(str, n)) or '?')} questions of {source}.
The question: the cheapest point with at least {threshold:.0%} multiple-choice accuracy.</p>
<p><b>{bar_text}</b></p>
<p class="caption">Two answers, because one accuracy is an estimate: the first trusts the
point estimate, the second asks that the whole 95% interval clear the bar (it has shown
that it does). Blank-image baselines are left out of both.</p>

<h2>Accuracy vs FLOPs</h2>
{_svg(svg_path)}
<p class="caption">Each dot is a point: its mean FLOPs per question (analytic count, log
scale) and multiple-choice accuracy, with its 95% Wilson interval as an error bar. Blue:
the Pareto front (no point both cheaper and more accurate). Dashed red: the bar. Circle:
the cheapest point whose accuracy clears the bar; square: the cheapest whose interval's
lower end does. Diamond: the reference the paired comparisons use. A dotted line with a
grey band is a blank-image baseline and its interval: what the model gets without seeing
the image.{star}</p>

<h2>Points</h2>
{points_table(df, threshold)}
<p class="caption">Per point: the settings that differ from the defaults; mean FLOPs per
question in total and by component (vision = ViT over every tile including the global
view, projector, LM = prefill, head and any decoding; measured = the FlopCounterMode
cross-check on a sample); the questions evaluated; accuracy = correct / all (a question
that failed or whose output did not parse counts as wrong) with its 95% Wilson interval.
<b>vs {_e(ref)}</b>: the accuracy difference from the reference point in percentage points,
question by question on the same questions, with a 95% paired bootstrap interval (10,000
resamples of the questions, seed 0) and the exact McNemar p-value (two-sided binomial test
on the questions exactly one of the two got right; a small p says the two differ, a large
one does not say they are equal). Per question type: accuracy [95% Wilson interval].
Direct answer: mean of min(1, matches/3) over questions with usable direct answers, 95%
bootstrap interval. Bold row: the reference; grey italic: blank-image baselines.{found_note}</p>
{recovery_section(recovery_csv)}{search}

<h2>Parity with upstream nanoVLM</h2>
{_parity_section(parity_path, upstream)}

<h2>Prompt templates</h2>
{prompt_html or '<p>(none recorded)</p>'}
<p class="caption">The exact template each point sent (fields filled per question; the
exact prompt of every question is in its records.jsonl).</p>

<h2>Dataset and code</h2>
<p>Evaluated data: {source}; file <code>{_e(data_path)}</code>, sha256
<code>{_e(sha or 'not available')}</code>.</p>
<table><tr><th class="l">nanovlm_lite</th><th class="l">git commit</th><th class="l">source sha256</th>
<th class="l">torch</th><th class="l">transformers</th><th class="l">python</th><th class="l">points</th></tr>
{code_rows}</table>{code_note}
<p class="caption">The code that made each point's metrics (from its metrics.json): the
package version, the git commit of the checkout, a hash of the package's source files
(it changes with any uncommitted edit), and the library versions.</p>

<h2>Environment</h2>
{environment_section(metrics)}
<p class="caption">What the evaluations ran on (each metrics.json's <code>environment</code>):
the package versions, the sha256 of the lock the environment was installed from (and any
installed package that differs from it), the device and CPU, torch's CPU kernel capability
and thread count. On one machine and one lock the numbers reproduce exactly; on another
machine the digits may move within the seed spread (docs/environment.md).</p>
</body></html>
"""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
