"""benchmarks/compare_demo.py: two make demo runs compared by their conclusions, not digits."""
import importlib.util
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("compare_demo", REPO / "benchmarks" / "compare_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(folder: Path, rows: dict, recovery: list | None = None) -> Path:
    """rows: point -> (accuracy, diff from full, p, TFLOPs, mark, blank)."""
    folder.mkdir(parents=True)
    pd.DataFrame([{"point": p, "accuracy": acc, "accuracy_diff": diff, "mcnemar_p": pval,
                   "tflops_per_question": tf, "cheapest_over_bar": mark,
                   "blank_images": True if blank else None,
                   "accuracy_color": 1.0 if p == "full" else acc,
                   "accuracy_color_low": 0.5, "accuracy_diff_low": -1.0,
                   "accuracy_shape": acc}
                  for p, (acc, diff, pval, tf, mark, blank) in rows.items()]).to_csv(
        folder / "summary.csv", index=False)
    if recovery is not None:
        pd.DataFrame(recovery, columns=["cut", "point", "against", "diff", "mcnemar_p"]).to_csv(
            folder / "recovery.csv", index=False)
    return folder


BASE = {"full": (0.96, 0.0, 1.0, 1.0, "", False),
        "cut-a": (0.90, -0.06, 1e-9, 0.4, "", False),
        "cut-b": (0.92, -0.04, 1e-6, 0.45, "estimate, lower bound", False),
        "cut-c": (0.80, -0.16, 1e-20, 0.3, "", False),
        "free": (0.955, -0.005, 0.5, 0.5, "", False),
        "dear": (0.95, -0.01, 0.2, 0.8, "", False),
        "blind": (0.68, -0.28, 1e-50, 1.0, "", True)}


def test_same_conclusions_pass_and_every_check_is_named(tmp_path):
    cd = _module()
    moved = {**BASE, "cut-a": (0.88, -0.08, 1e-12, 0.4, "", False),   # digits moved
             "dear": (0.965, +0.005, 0.6, 0.8, "", False)}             # sign moved, not significant
    rec = [("cut-a", "cut-a-ft", "cut-a", 0.05, 1e-5), ("cut-a", "cut-a-kd", "cut-a-ft", 0.01, 0.3)]
    lines, checks = cd.compare(write_run(tmp_path / "a", BASE, rec),
                               write_run(tmp_path / "b", moved, [(c, p, q, d / 2, pv) for c, p, q, d, pv in rec]))
    assert all(ok for _, ok in checks), checks
    assert any("of 7 compared" in text for text, _ in checks)  # 6 points + 1 recovered vs its cut
    slope = [text for text, _ in checks if text.startswith("checked: at <= half")][0]
    assert "3 lose >= 3 points" in slope and "(cut-a, cut-b, cut-c)" in slope and "1 within 1 point (free)" in slope
    assert lines[2].startswith("| cut-c | 300.0000 |")  # cheapest first, in GFLOPs


def test_a_significant_flip_a_lost_slope_and_far_marks_fail(tmp_path):
    cd = _module()
    flipped = {**BASE, "dear": (0.99, +0.03, 1e-4, 0.8, "", False),
               "free": (0.93, -0.03, 1e-3, 0.5, "", False),
               "cut-b": (0.92, -0.04, 1e-6, 0.45, "", False),
               "cut-a": (0.90, -0.06, 1e-9, 0.4, "estimate, lower bound", False)}
    rec_a = [("cut-a", "cut-a-kd", "cut-a", 0.05, 1e-6), ("cut-a", "cut-a-kd", "cut-a-ft", 0.02, 1e-3)]
    rec_b = [("cut-a", "cut-a-kd", "cut-a", -0.01, 0.4), ("cut-a", "cut-a-kd", "cut-a-ft", -0.01, 0.4)]
    lines, checks = cd.compare(write_run(tmp_path / "a", BASE, rec_a), write_run(tmp_path / "b", flipped, rec_b))
    failed = [text for text, ok in checks if not ok]
    # the recovered point against its cut is a claim; distilled against fine-tuned is reported
    assert any("other sign in the other: dear, cut-a-kd vs cut-a (of 7" in t for t in failed), failed
    assert lines[-1] == "Recipe pairs at one cut (reported, not checked): cut-a-kd vs cut-a-ft +2.0 (0.001) / -1.0 (0.4)"
    assert any(t.startswith("checked: at <= half") and "0 within 1 point" in t for t in failed), failed
    assert "mark (estimate): cut-b / cut-a (2.0 points apart in the checked run)" in failed
    assert "mark (lower bound): cut-b / cut-a (2.0 points apart in the checked run)" in failed
    assert len(failed) == 4, failed
    # a model that does not see fails the first checks
    blind_like = {**BASE, "full": (0.75, 0.0, 1.0, 1.0, "", False),
                  "blind": (0.68, -0.07, 1e-5, 1.0, "", True)}
    _, checks = cd.compare(write_run(tmp_path / "c", blind_like), write_run(tmp_path / "d", BASE))
    failed = [text for text, ok in checks if not ok]
    assert "reference: `full` every type >= 0.90 (color 1.000, shape 0.750)" in failed
    assert "reference: `blind` 7.0 points below `full` (>= 20)" in failed


def test_the_command_exits_1_on_a_failed_check_and_writes_markdown(tmp_path):
    cd = _module()
    a = write_run(tmp_path / "a", BASE)
    b = write_run(tmp_path / "b", {**BASE, "cut-c": (0.99, +0.03, 1e-4, 0.3, "", False)})
    assert cd.main([str(a), str(a), "--config", str(tmp_path / "none.yaml")]) == 0
    assert cd.main([str(a), str(b), "--markdown", str(tmp_path / "out.md")]) == 1
    assert "- FAILED: differences with p < 0.01" in (tmp_path / "out.md").read_text()


def write_records(run: Path, point: str, correct: list[bool]) -> None:
    folder = run / "points" / point
    folder.mkdir(parents=True)
    pd.DataFrame({"question_id": [f"q{i}" for i in range(len(correct))],
                  "correct": correct}).to_json(folder / "records.jsonl", orient="records", lines=True)


def test_marks_further_than_a_point_apart_pass_only_if_the_questions_cannot_tell_them_apart(tmp_path):
    """2 points apart on 100 questions: 6 against 4 discordant answers is noise (p 0.75),
    12 against 0 is not (p 5e-4); without records only the 1-point rule applies."""
    cd = _module()
    moved = {**BASE, "cut-b": (0.92, -0.04, 1e-6, 0.45, "", False),
             "cut-a": (0.90, -0.06, 1e-9, 0.4, "estimate, lower bound", False)}
    reference = write_run(tmp_path / "ref", BASE)
    for name, (only_b, only_a) in {"noise": (6, 4), "real": (12, 0)}.items():
        run = write_run(tmp_path / name, moved)
        both = 100 - only_a - only_b - 10
        write_records(run, "cut-b", [True] * only_b + [False] * only_a + [True] * both + [False] * 10)
        write_records(run, "cut-a", [False] * only_b + [True] * only_a + [True] * both + [False] * 10)
        marks = [(text, ok) for text, ok in cd.compare(reference, run)[1] if text.startswith("mark")]
        assert len(marks) == 2
        for text, ok in marks:
            assert "2.0 points apart in the checked run, McNemar p" in text
            assert ok == (name == "noise"), text
        expected_p = "0.75" if name == "noise" else "0.00049"
        assert f"McNemar p {expected_p})" in marks[0][0], marks[0][0]
