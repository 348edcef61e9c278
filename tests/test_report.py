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
    assert plot_pareto(csv, png, svg, threshold=0.65, title="t") == "cheap"
    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    assert "cheap" in svg.read_text()


def test_plot_says_when_no_point_clears_the_bar(tmp_path):
    csv = tmp_path / "summary.csv"
    frame().to_csv(csv, index=False)
    svg = tmp_path / "p.svg"
    assert plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.9) is None
    assert "no point reaches 90%" in svg.read_text()


def test_blank_image_baselines_are_a_line_not_a_point_on_the_front(tmp_path):
    """A blind point at full cost but over the bar is neither on the front nor the answer."""
    df = frame().assign(blank_images=[None] * 6)
    blind = pd.DataFrame({"point": ["blind"], "tflops_per_question": [0.01], "accuracy": [0.68],
                          "blank_images": [True]})
    csv = tmp_path / "summary.csv"
    pd.concat([df, blind]).to_csv(csv, index=False)
    svg = tmp_path / "p.svg"
    assert plot_pareto(csv, tmp_path / "p.png", svg, threshold=0.65) == "cheap"
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
    best = plot_pareto(csv, tmp_path / "p.png", tmp_path / "p.svg", threshold=0.65)
    assert best == "default"
    assert "not plotted (no accuracy: the split has no answers): global-256" in capsys.readouterr().out
