"""Aggregation of per-point JSONs into the summary, the Pareto front and its plot."""
import json

import pandas as pd
import pytest

from nanovlm_lite.report.aggregate import aggregate
from nanovlm_lite.report.pareto import cheapest_passing, pareto_front, plot_pareto


def frame():
    return pd.DataFrame({
        "point": ["big", "mid", "dominated", "cheap", "tiny", "tie-mid"],
        "tflops_per_question": [3.5, 0.30, 0.50, 0.10, 0.05, 0.30],
        "accuracy": [0.74, 0.70, 0.60, 0.66, 0.40, 0.70],
    })


def test_pareto_front_drops_dominated_points_and_keeps_ties():
    front = pareto_front(frame())
    assert list(front["point"]) == ["tiny", "cheap", "mid", "tie-mid", "big"]


def test_pareto_front_needs_strictly_better_in_one():
    df = pd.DataFrame({"point": ["a", "b"], "tflops_per_question": [1.0, 1.0],
                       "accuracy": [0.5, 0.6]})
    assert list(pareto_front(df)["point"]) == ["b"]


def test_cheapest_passing():
    assert cheapest_passing(frame(), 0.65)["point"] == "cheap"
    assert cheapest_passing(frame(), 0.9) is None


def test_plot_labels_the_cheapest_point_over_the_bar(tmp_path):
    csv = tmp_path / "summary.csv"
    frame().to_csv(csv, index=False)
    png, svg = tmp_path / "pareto.png", tmp_path / "pareto.svg"
    assert plot_pareto(csv, png, svg, threshold=0.65, title="t").estimate == "cheap"
    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    assert "cheap" in svg.read_text()


def test_plot_says_when_no_point_clears_the_bar(tmp_path):
    csv = tmp_path / "summary.csv"
    frame().to_csv(csv, index=False)
    svg = tmp_path / "p.svg"
    assert plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.9) == (None, None)
    assert "no point reaches 90%" in svg.read_text()


def test_blank_image_baselines_are_a_line_not_a_point_on_the_front(tmp_path):
    """A blind point at full cost but over the bar is neither on the front nor the answer."""
    df = frame().assign(blank_images=[None] * 6)
    blind = pd.DataFrame({"point": ["blind"], "tflops_per_question": [0.01], "accuracy": [0.68],
                          "blank_images": [True]})
    csv = tmp_path / "summary.csv"
    pd.concat([df, blind]).to_csv(csv, index=False)
    svg = tmp_path / "p.svg"
    assert plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.65).estimate == "cheap"
    assert "blind: blank images (68.0%)" in svg.read_text()
    from nanovlm_lite.report.pareto import split_baselines
    points, baselines = split_baselines(pd.read_csv(csv))
    assert list(baselines["point"]) == ["blind"] and "blind" not in set(points["point"])


def write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def point_files(tmp_path):
    metrics, flops = [], []
    for name, settings, acc, tf in [("default", {}, 0.74, 3.4),
                                    ("global-256", {"global_only": True, "tile_size": 256}, 0.6, 0.1),
                                    ("gen", {"scoring": "generate", "max_new_tokens": 10}, 0.7, 3.5)]:
        d = tmp_path / name
        d.mkdir()
        metrics.append(write(d / "metrics.json", {
            "point": name, "accuracy": acc, "n_questions": 10, "settings": settings,
            "direct_answer_accuracy": 0.5}))
        flops.append(write(d / "flops.json", {
            "tflops_per_question": tf, "vision_tflops": tf * 0.8, "projector_tflops": 0.001,
            "lm_tflops": tf * 0.2, "measured_tflops": tf, "n_questions": 10}))
    return metrics, flops


def test_aggregate_joins_metrics_flops_and_changed_settings(point_files, tmp_path, capsys):
    metrics, flops = point_files
    out = tmp_path / "out" / "summary.csv"
    df = aggregate(metrics, flops, out)
    assert out.exists()
    read = pd.read_csv(out)
    assert list(read["point"]) == ["global-256", "default", "gen"]  # by TFLOPs
    row = read.set_index("point").loc["global-256"]
    assert row["accuracy"] == 0.6 and row["n_questions"] == 10
    assert row["tflops_per_question"] == 0.1 and row["lm_tflops"] == pytest.approx(0.02)
    assert row["tile_size"] == 256 and bool(row["global_only"]) is True
    assert row["direct_answer_accuracy"] == 0.5
    assert pd.isna(read.set_index("point").loc["default", "tile_size"])
    assert read.set_index("point").loc["gen", "scoring"] == "generate"
    for col in ["point", "accuracy", "n_questions", "tflops_per_question", "vision_tflops",
                "lm_tflops", "measured_tflops"]:
        assert col in df.columns
    assert "global-256" in capsys.readouterr().out


def test_aggregate_rejects_mismatched_pairs(point_files, tmp_path):
    metrics, flops = point_files
    with pytest.raises(ValueError):
        aggregate(metrics, flops[:2], tmp_path / "s.csv")
    write(flops[0], {"point": "other", "tflops_per_question": 1.0})
    with pytest.raises(ValueError, match="other"):
        aggregate(metrics, flops, tmp_path / "s.csv")


def test_a_point_without_accuracy_is_summarised_and_left_off_the_plot(point_files, tmp_path, capsys):
    """A point evaluated on a split without answers has accuracy null: the summary shows it,
    the plot skips it with a note, and nothing crashes."""
    metrics, flops = point_files
    data = json.loads(metrics[1].read_text())
    write(metrics[1], {**data, "accuracy": None, "direct_answer_accuracy": None})
    csv = tmp_path / "summary.csv"
    aggregate(metrics, flops, csv)
    assert "global-256" in capsys.readouterr().out
    chosen = plot_pareto(csv, tmp_path / "p.png", tmp_path / "p.svg", threshold=0.65)
    assert chosen.estimate == "default"
    assert "(no accuracy: evaluated on data without answers): global-256" in capsys.readouterr().out


# ---- intervals, paired comparisons and the bar two ways ------------------------------

from nanovlm_lite.evaluate.stats import mcnemar_exact, wilson_interval  # noqa: E402
from nanovlm_lite.report.front import bar_points, choose_reference  # noqa: E402


def bar_frame():
    """Estimate and lower bound disagree: `cheap` clears 65% by its estimate only."""
    return pd.DataFrame({
        "point": ["nodata", "blind", "cheap", "mid", "big"],
        "tflops_per_question": [0.02, 0.05, 0.10, 0.30, 1.00],
        "accuracy": [None, 0.80, 0.66, 0.70, 0.74],
        "accuracy_low": [None, 0.78, 0.62, 0.66, 0.71],
        "accuracy_high": [None, 0.82, 0.70, 0.74, 0.77],
        "blank_images": [None, True, None, None, None],
    })


def test_bar_two_ways_picks_different_points(capsys):
    chosen = bar_points(bar_frame(), 0.65)
    assert chosen.estimate == "cheap" and chosen.lower_bound == "mid"
    # the blank-image baseline clears both but is no answer; the point without an
    # accuracy is left out with a note, not a crash
    assert "nodata" in capsys.readouterr().out
    assert bar_points(bar_frame(), 0.72) == ("big", None)
    assert bar_points(bar_frame(), 0.70) == ("mid", "big")
    assert bar_points(bar_frame(), 0.9) == (None, None)


def test_plot_marks_both_points(tmp_path):
    csv = tmp_path / "summary.csv"
    bar_frame().to_csv(csv, index=False)
    svg = tmp_path / "p.svg"
    chosen = plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.65)
    assert chosen == ("cheap", "mid")
    text = svg.read_text()
    assert "cheapest with accuracy &gt;= 65%" in text
    assert "cheapest with 95% lower bound &gt;= 65%" in text
    assert "66.0% [62.0, 70.0]" in text  # the marked point's label carries its interval


def test_default_reference_is_the_most_expensive_plain_point():
    df = pd.DataFrame({"point": ["a", "b-ft", "c", "blind", "test-split"],
                       "tflops_per_question": [1.0, 5.0, 2.0, 9.0, 10.0],
                       "accuracy": [0.5, 0.6, 0.55, 0.4, None],
                       "finetune": [None, "recipe", None, None, None],
                       "blank_images": [None, None, None, True, None]})
    assert choose_reference(df) == "c"
    assert choose_reference(df, "a") == "a"
    with pytest.raises(ValueError, match="reference_point 'zz'"):
        choose_reference(df, "zz")
    with pytest.raises(ValueError, match="no accuracy"):
        choose_reference(df, "test-split")


def write_records(path, answers):
    path.write_text("".join(json.dumps(
        {"question_id": f"q{i}", **({"error": "bad image", "correct": False} if a is None
                                    else {"correct": bool(a)})}) + "\n"
        for i, a in enumerate(answers)))
    return path


@pytest.fixture
def paired_files(tmp_path):
    """Three points on the same 12 questions (one an error), and one on data without answers."""
    answers = {
        "full": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],     # 9/12, the most expensive plain
        "cheap": [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, None],  # 7/12: 3 lost, 1 won vs full
        "blind": [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0],     # a blank-image baseline
        "test": [None] * 12,
    }
    cost = {"full": 2.0, "cheap": 0.5, "blind": 2.0, "test": 2.0}
    settings = {"full": {}, "cheap": {"global_only": True}, "blind": {"blank_images": True},
                "test": {}}
    metrics, flops, records = [], [], []
    for name, ans in answers.items():
        d = tmp_path / name
        d.mkdir()
        n_correct = sum(a == 1 for a in ans)
        acc = None if name == "test" else n_correct / 12
        low, high = (None, None) if acc is None else wilson_interval(n_correct, 12)
        metrics.append(write(d / "metrics.json", {
            "point": name, "accuracy": acc, "accuracy_low": low, "accuracy_high": high,
            "n_questions": 12, "n_correct": n_correct, "settings": settings[name],
            "accuracy_by_type": {"yes/no": 0.5}, "accuracy_by_type_low": {"yes/no": 0.2},
            "accuracy_by_type_high": {"yes/no": 0.8}, "n_by_type": {"yes/no": 12},
            "prompt_template": "default",
            "code": {"git_commit": "0123456789abcdef", "source_sha256": "feedface"}}))
        flops.append(write(d / "flops.json", {"tflops_per_question": cost[name],
                                              "n_questions": 12}))
        if name == "test":  # no answers: records without `correct`
            (d / "records.jsonl").write_text("".join(
                json.dumps({"question_id": f"q{i}"}) + "\n" for i in range(12)))
            records.append(d / "records.jsonl")
        else:
            records.append(write_records(d / "records.jsonl", ans))
    return metrics, flops, records


def test_aggregate_writes_intervals_and_paired_comparisons(paired_files, tmp_path, capsys):
    metrics, flops, records = paired_files
    out = tmp_path / "summary.csv"
    aggregate(metrics, flops, out, records_paths=records, threshold=0.5)
    df = pd.read_csv(out).set_index("point")
    for col in ["accuracy_low", "accuracy_high", "accuracy_diff", "accuracy_diff_low",
                "accuracy_diff_high", "mcnemar_p", "reference", "cheapest_over_bar",
                "accuracy_yes_no", "accuracy_yes_no_low", "accuracy_yes_no_high", "n_yes_no",
                "prompt_template", "code_version"]:
        assert col in df.columns, col
    assert (df["reference"] == "full").all()  # the most expensive plain point with answers
    cheap = df.loc["cheap"]
    assert cheap["accuracy"] == pytest.approx(7 / 12)
    assert (cheap["accuracy_low"], cheap["accuracy_high"]) == pytest.approx(wilson_interval(7, 12))
    # against full: only full right on q6, q7, q8, only cheap right on q9; q11 is wrong
    # for both (cheap's error counts as wrong): p = 2 (1 + 4) / 16
    assert cheap["accuracy_diff"] == pytest.approx(-2 / 12)
    assert cheap["mcnemar_p"] == pytest.approx(0.625) == mcnemar_exact(3, 1)
    assert cheap["accuracy_diff_low"] < -2 / 12 < cheap["accuracy_diff_high"]
    full = df.loc["full"]
    assert (full["accuracy_diff"], full["mcnemar_p"]) == (0.0, 1.0)
    # data without answers: no accuracy, no interval, no comparison, no crash
    test = df.loc["test"]
    assert pd.isna(test["accuracy"]) and pd.isna(test["accuracy_low"])
    assert pd.isna(test["accuracy_diff"]) and pd.isna(test["mcnemar_p"])
    # the bar at 50%: cheap clears it by its estimate; by the lower bound nothing does
    # (Wilson(9, 12) starts at 0.468; the blind point is no answer)
    assert cheap["cheapest_over_bar"] == "estimate"
    assert df["cheapest_over_bar"].fillna("").tolist().count("lower bound") == 0
    assert df.loc["cheap", "code_version"] == "0123456789ab+src:feedface"
    printed = capsys.readouterr().out
    assert "vs full" in printed and "cheapest point whose 95% lower bound >= 50.0%: none" in printed


def test_aggregate_names_the_reference_it_is_given(paired_files, tmp_path):
    metrics, flops, records = paired_files
    out = tmp_path / "summary.csv"
    aggregate(metrics, flops, out, records_paths=records, reference="cheap")
    df = pd.read_csv(out).set_index("point")
    assert df.loc["full", "accuracy_diff"] == pytest.approx(2 / 12)
    with pytest.raises(ValueError, match="reference_point 'nope'"):
        aggregate(metrics, flops, out, records_paths=records, reference="nope")


# ---- the plot reads at a glance ------------------------------------------------------

def crowded_frame(scale=1e-3):
    """Like the demo: three points on one spot, near-equal neighbours, a baseline."""
    rows = [("full", 1179, 0.130), ("fastv-0-0.5", 1179, 0.123), ("global-only", 1179, 0.123),
            ("prompt-short", 1167, 0.131), ("learned-pool", 1170, 0.114),
            ("pool-avg2", 1131, 0.114), ("skip-lm-1", 1134, 0.115),
            ("select-norm-0.5", 1127, 0.119), ("global-48", 1124, 0.081),
            ("vit-1", 1076, 0.075), ("vit-1-ft", 1166, 0.075), ("global-32", 1125, 0.048),
            ("letter", 686, 0.147), ("generate", 756, 0.148), ("blind", 1010, 0.130)]
    out = []
    for name, k, gflops in rows:
        low, high = wilson_interval(k, 1500)
        out.append({"point": name, "accuracy": k / 1500, "accuracy_low": low,
                    "accuracy_high": high, "tflops_per_question": gflops * scale,
                    "reference": "full", "blank_images": True if name == "blind" else None})
    return pd.DataFrame(out)


def test_labels_never_overlap_each_other_the_markers_or_the_legend():
    from matplotlib.text import Text

    from nanovlm_lite.report.pareto import draw_pareto
    drawn = draw_pareto(crowded_frame(), threshold=0.73, title="demo", say=lambda _: None)
    fig, ax = drawn.fig, drawn.ax
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labelled = {n for lab in drawn.labels for n in lab.point.split(", ")}
    assert labelled == set(crowded_frame()["point"]) - {"blind"}
    boxes = [Text.get_window_extent(lab.text, renderer) for lab in drawn.labels]
    legend = drawn.legend.get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert not a.overlaps(legend), drawn.labels[i].point
        assert axes.contains(a.x0, a.y0) and axes.contains(a.x1, a.y1), drawn.labels[i].point
        for j in range(i):
            assert not a.overlaps(boxes[j]), (drawn.labels[i].point, drawn.labels[j].point)
    assert not legend.overlaps(axes)  # the legend is off the data
    # no label covers a marker
    df = crowded_frame()
    for x, y in zip(df["tflops_per_question"] / 1e-3, df["accuracy"]):
        px, py = ax.transData.transform((x, y))
        assert not any(b.contains(px, py) for b in boxes), (x, y)
    # the three points on one spot share one label
    assert "fastv-0-0.5, global-only" in {lab.point for lab in drawn.labels}
    assert drawn.unit == "GFLOPs" and "GFLOPs per question" in ax.get_xlabel()
    assert drawn.chosen == ("global-32", "vit-1-ft")
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_the_flops_unit_follows_the_data():
    from nanovlm_lite.report.format import flops_unit
    assert flops_unit([1.3e-4, 4.8e-5]) == ("GFLOPs", 1e-3)
    assert flops_unit([3.46, 0.05]) == ("TFLOPs", 1.0)
    assert flops_unit([0.09, 0.01])[0] == "GFLOPs"
    assert flops_unit([2e-8])[0] == "kFLOPs"


def test_study_page_shows_the_answer_table_parity_prompts_data_and_code(paired_files, tmp_path):
    from nanovlm_lite.report.page import write_page
    metrics, flops, records = paired_files
    csv = tmp_path / "summary.csv"
    aggregate(metrics, flops, csv, records_paths=records, threshold=0.5)
    svg = tmp_path / "p.svg"
    plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.5)
    data = write(tmp_path / "val.parquet", {"not": "really parquet"})
    parity = write(tmp_path / "parity.json", {"ok": True, "tolerance": 1e-3, "cases": [
        {"ok": True, "logits_max_abs_diff": 7e-6, "tiles_max_abs_diff": 0.0}] * 4})
    out = write_page(csv, svg, tmp_path / "study.html", 0.5, metrics_paths=metrics,
                     study="s", model="m", dataset={"repo": "org/ds", "split": "validation",
                                                    "revision": "abc123"},
                     data_path=data, parity_path=parity, upstream={"commit": "4e0c096"})
    page = out.read_text()
    assert "cheapest point with accuracy &gt;= 50.0%: cheap" in page
    assert "cheapest point whose 95% lower bound &gt;= 50.0%: none" in page
    assert "<svg" in page  # the plot itself, inline
    assert "58.3%</td><td>[32.0, 80.7]" in page  # cheap: 7/12 and its Wilson interval
    assert "vs full (pts)" in page and "-16.7" in page and "0.625" in page
    assert "passed</span> on 4 questions" in page and "7.00e-06" in page
    assert "revision <code>abc123</code>" in page
    import hashlib
    assert hashlib.sha256(data.read_bytes()).hexdigest() in page
    assert "0123456789abcdef" in page and "feedface" in page  # the code version
    assert "yes_no" in page and "blank-image baseline" in page
    # without a parity report the page says so instead of claiming one
    bare = write_page(csv, svg, tmp_path / "bare.html", 0.5, metrics_paths=metrics,
                      dataset={"build": "easyvqa", "seed": 0}).read_text()
    assert "No parity check in this study" in bare and "easy-vqa" in bare


def test_page_shows_the_environment_of_each_point():
    from nanovlm_lite.report.page import environment_section
    env = {"python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6", "lock_sha256": "ab" * 32,
           "lock_differs": {}, "device": "cpu", "cpu": "AMD EPYC",
           "torch_cpu_capability": "AVX512", "torch_threads": 2}
    one = environment_section([{"point": "full", "environment": env},
                               {"point": "global", "environment": dict(env)}])
    assert "full, global" in one and "AVX512" in one and "ab" * 8 in one and "different" not in one
    two = environment_section([{"point": "full", "environment": env},
                               {"point": "global", "environment": dict(env, torch_threads=4)}])
    assert "different environments" in two
    assert "no environment recorded" in environment_section([{"point": "full"}])


# ---- the budgeted search: found points and the search's section ----------------------

def test_aggregate_marks_only_the_found_points(point_files, tmp_path, capsys):
    metrics, flops = point_files
    out = tmp_path / "summary.csv"
    df = aggregate(metrics, flops, out, found=["global-256"])
    read = pd.read_csv(out).set_index("point")
    assert read["found"].to_dict() == {"global-256": True, "default": False, "gen": False}
    assert list(df.columns).index("found") < list(df.columns).index("tflops_per_question")
    # without `found` every point is a hand-listed one; a name not among the points is said
    aggregate(metrics, flops, tmp_path / "s.csv")
    assert not pd.read_csv(tmp_path / "s.csv")["found"].any()
    aggregate(metrics, flops, tmp_path / "s2.csv", found=["found.nope"])
    assert "found.nope" in capsys.readouterr().out


FOUND = "found.global_only-true.tile_size-32"
RUNGS = [20, 60]


def _decision(correct, n, threshold, last):
    low, high = wilson_interval(correct, n)
    if high < threshold:
        return "dropped"
    return "promoted" if not last else "cleared" if low >= threshold else "short of bar"


@pytest.fixture
def search_files(tmp_path):
    """A hand-made search at a 60% bar: rungs of 20 and 60 questions; two candidates
    dropped at rung 0, one short of the bar, one left when the budget ran out, one cleared."""
    threshold = 0.6
    trials = [  # name, GFLOPs, correct at each rung reached, final decision
        ("cand.a", 1.0, [5], None), ("cand.c", 1.5, [13, 38], None),
        (FOUND, 2.0, [14, 45], None), ("cand.e", 2.5, [12], "out of budget"),
        ("cand.d", 3.0, [6], None)]
    rows = []
    for number, (name, gflops, correct, final) in enumerate(trials):
        for rung, k in enumerate(correct):
            n = RUNGS[rung]
            low, high = wilson_interval(k, n)
            decision = _decision(k, n, threshold, last=rung == len(RUNGS) - 1)
            rows.append({"trial": number, "name": name, "gflops_estimate": gflops, "rung": rung,
                         "n_questions": n, "correct": k, "accuracy": k / n,
                         "accuracy_low": low, "accuracy_high": high,
                         "gflops": gflops * 1.01, "rung_decision": decision,
                         "decision": None, "pareto": False, "found": name == FOUND,
                         "settings": json.dumps({"tile_size": 32})})
        for r in rows:
            if r["trial"] == number:
                r["decision"] = final or rows[-1]["rung_decision"]
    csv = tmp_path / "search" / "trials.csv"
    csv.parent.mkdir()
    pd.DataFrame(rows).to_csv(csv, index=False)
    spent = int(pd.read_csv(csv).groupby("trial")["n_questions"].max().sum())
    found_yaml = tmp_path / "search" / "found.yaml"
    import yaml
    found_yaml.write_text("# header\n" + yaml.safe_dump({
        "threshold": threshold, "budget": 250, "question_evaluations": spent,
        "search_questions": 60, "rungs": RUNGS, "candidates": 6, "invalid_candidates": 1,
        "evaluated": 5, "not_evaluated": 1,
        "points": {FOUND: {"global_only": True, "tile_size": 32}},
        "found_gflops_on_search_split": 2.02, "pareto": [FOUND]}, sort_keys=False))
    return found_yaml, csv


def test_search_plot_and_section_say_what_the_search_spent_and_found(search_files, tmp_path):
    from nanovlm_lite.report.search_plot import plot_trials, search_section
    found_yaml, csv = search_files
    trials = pd.read_csv(csv)
    # the fixture is what it says: the found trial cleared, the rest did not
    last = trials.sort_values("rung").groupby("trial").tail(1).set_index("name")
    assert last.loc[FOUND, "decision"] == "cleared"
    assert last.loc["cand.c", "decision"] == "short of bar"
    drops = trials[trials["rung_decision"] == "dropped"]["rung"]
    dropped = int((drops == 0).sum())
    assert dropped == 2 and not (drops == 1).any()

    png = tmp_path / "plots" / "trials.png"
    plot_trials(csv, png, 0.6)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    html = search_section(found_yaml, csv, png)
    assert FOUND in html and "2.02 GFLOPs per question on the search split" in html
    assert "180 question-evaluations of its budget of 250" in html
    assert f"dropped {dropped} at rung 0 (20 questions), 0 at rung 1 (60 questions)" in html
    assert "held-out search split, not on the" in html and 'marked "found"' in html
    import base64
    assert base64.b64encode(data).decode() in html  # the plot drawn above, embedded
    # the table: each trial once, at its last rung, with its interval and final decision
    assert html.count("<tr") == 1 + 5
    assert "cand.e</td>" in html and "out of budget" in html
    k, n = 45, 60
    assert f"{100 * k / n:.1f}%</td><td>[{100 * wilson_interval(k, n)[0]:.1f}" in html


def test_search_section_says_when_nothing_cleared_the_bar(search_files, tmp_path):
    import yaml

    from nanovlm_lite.report.search_plot import search_section
    found_yaml, csv = search_files
    content = yaml.safe_load(found_yaml.read_text())
    found_yaml.write_text(yaml.safe_dump({**content, "points": {},
                                          "found_gflops_on_search_split": None}))
    trials = pd.read_csv(csv).assign(found=False)
    trials.to_csv(csv, index=False)
    html = search_section(found_yaml, csv)  # no png path: drawn in memory
    assert "Nothing cleared the bar" in html and "data:image/png;base64," in html
    assert "(found)" not in html


def test_study_page_includes_the_search_only_when_given(paired_files, search_files, tmp_path):
    from nanovlm_lite.report.page import write_page
    metrics, flops, records = paired_files
    found_yaml, trials_csv = search_files
    csv = tmp_path / "summary.csv"
    aggregate(metrics, flops, csv, records_paths=records, threshold=0.5, found=["cheap"])
    svg = tmp_path / "p.svg"
    plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.5)
    assert "found by the search" in svg.read_text()  # the star's legend entry
    png = tmp_path / "trials.png"
    page = write_page(csv, svg, tmp_path / "with.html", 0.5, metrics_paths=metrics,
                      found_yaml=found_yaml, trials_csv=trials_csv, trials_png=png).read_text()
    assert "<h2>Search</h2>" in page and FOUND in page and png.stat().st_size > 0
    assert page.index("<h2>Points</h2>") < page.index("<h2>Search</h2>") \
        < page.index("<h2>Parity with upstream nanoVLM</h2>")
    assert '<tr class="bar found"><td class="l">cheap (found)</td>' in page
    assert "full (found)" not in page
    bare = write_page(csv, svg, tmp_path / "bare.html", 0.5, metrics_paths=metrics).read_text()
    assert "<h2>Search</h2>" not in bare and "search split" not in bare
    assert "cheap (found)" in bare  # the summary still says which point was found


# ---- compress and recover: recovered points against their cut and each other ---------

def test_recovery_table_compares_each_recovery_with_its_cut_and_the_recipes_with_each_other(
        tmp_path, capsys):
    from nanovlm_lite.evaluate.stats import paired_difference
    from nanovlm_lite.report.page import write_page
    answers = {  # 10 questions
        "full": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        "cut": [1, 1, 1, 0, 0, 0, 0, 0, 1, 0],     # loses 5 of full's, 4/10
        "cut-ft": [1, 1, 1, 1, 1, 0, 0, 0, 1, 1],  # wins back q3, q4; gains q9: 7/10
        "cut-kd": [1, 1, 1, 1, 1, 1, 1, 0, 0, 1],  # 8/10
        "other-ft": [1] * 10,                       # a recipe at settings no point has
    }
    settings = {"full": {}, "cut": {"vit_blocks": 1},
                "cut-ft": {"vit_blocks": 1, "finetune": "demo-finetune"},
                "cut-kd": {"vit_blocks": 1, "finetune": "demo-distill"},
                "other-ft": {"tile_size": 32, "finetune": "demo-finetune"}}
    metrics, flops, records = [], [], []
    for name, ans in answers.items():
        d = tmp_path / name
        d.mkdir()
        metrics.append(write(d / "metrics.json", {
            "point": name, "accuracy": sum(ans) / 10, "n_questions": 10, "n_correct": sum(ans),
            "settings": settings[name]}))
        flops.append(write(d / "flops.json", {"tflops_per_question": 1.0 if name == "full" else 0.5}))
        records.append(write_records(d / "records.jsonl", ans))
    csv, recovery = tmp_path / "summary.csv", tmp_path / "recovery.csv"
    aggregate(metrics, flops, csv, records_paths=records, recovery_csv=recovery)
    table = pd.read_csv(recovery)
    got = {(r.point, r.against): r for r in table.itertuples()}
    assert set(got) == {("cut-ft", "cut"), ("cut-kd", "cut"), ("cut-kd", "cut-ft")}
    assert all(table["cut"] == "cut")  # other-ft recovers no point of the study: no row
    for (point, against), r in got.items():
        expected = paired_difference(answers[point], answers[against])
        assert r.diff == pytest.approx(expected["difference"])
        assert r.mcnemar_p == pytest.approx(expected["p_value"])
        assert r.n_questions == 10
    # by hand: cut-ft right where cut is wrong on q3, q4, q9; never the other way round
    assert got[("cut-ft", "cut")].diff == pytest.approx(0.3)
    assert got[("cut-ft", "cut")].mcnemar_p == pytest.approx(2 * 0.5 ** 3)
    assert got[("cut-kd", "cut")].recipe == "demo-distill"
    assert got[("cut-kd", "cut-ft")].diff == pytest.approx(0.1)  # q5, q6 against q8
    assert "Compress and recover" in capsys.readouterr().out
    # a search's point at the cut's settings does not take the cut's place
    from nanovlm_lite.report.recovery import recovery_groups
    summary = pd.read_csv(csv)
    twin = summary[summary["point"] == "cut"].assign(point="found.vit_blocks-1", found=True)
    assert recovery_groups(pd.concat([twin, summary]))["cut"] == ["cut-ft", "cut-kd"]
    svg = tmp_path / "p.svg"
    plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.5)
    page = write_page(csv, svg, tmp_path / "study.html", 0.5, metrics_paths=metrics,
                      recovery_csv=recovery).read_text()
    assert "<h2>Compress and recover</h2>" in page and "demo-distill" in page and "+30.0" in page
    # a study with no recovered point: an empty table, and no section on the page
    aggregate(metrics[:2], flops[:2], csv, records_paths=records[:2], recovery_csv=recovery)
    assert pd.read_csv(recovery).empty
    assert "Compress and recover" not in write_page(
        csv, svg, tmp_path / "bare.html", 0.5, recovery_csv=recovery).read_text()
    with pytest.raises(ValueError, match="needs records_paths"):
        aggregate(metrics, flops, csv, recovery_csv=recovery)
