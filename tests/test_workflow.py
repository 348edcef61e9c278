"""The Snakemake workflow: job graphs, config errors, and caching that is right both ways.

Each test runs Snakemake's CLI on a copy of the workflow (Snakefile, rules, scripts,
config, src) in a tmp dir, so results, metadata and code edits stay there.
"""
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nanovlm_lite.data.aokvqa import load_questions

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
COPIED = ["Snakefile", "rules", "workflow_scripts", "config", "profiles", "envs", "locks", "src"]


@pytest.fixture
def workflow(tmp_path):
    root = tmp_path / "wf"
    root.mkdir()
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, root / name)
    return root


def snakemake(root, *args, check=True):
    env = {"PYTHONPATH": str(root / "src"), "PATH": f"{SNAKEMAKE.parent}:/usr/bin:/bin",
           "HOME": str(root), "MPLBACKEND": "Agg"}
    proc = subprocess.run([str(SNAKEMAKE), *args], cwd=root, capture_output=True, text=True,
                          env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned(root, *args):
    """(rule, point) for every job a dry run would run."""
    out = snakemake(root, "-n", "--cores", "1", *args).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if m:
            w = re.search(r"point=([^,\s]+)", block)
            jobs.append((m.group(1), w.group(1) if w else None))
    return jobs


def write_config(root, name, config):
    path = root / "config" / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return f"config/{name}"


def test_real_study_lists_the_full_job_graph(workflow):
    counts = Counter(rule for rule, _ in planned(workflow))
    config = yaml.safe_load((workflow / "config" / "config.yaml").read_text())
    n_points, n_shards = len(config["points"]), config["shards"]
    n_ft = sum(1 for s in config["points"].values() if (s or {}).get("finetune"))
    pruned = [s for s in config["points"].values()
              if any(k.startswith("prune_") and v < 1 for k, v in (s or {}).items())]
    calibrations = {tuple(sorted((k, str(v)) for k, v in s.items()
                                 if not k.startswith("prune_") and k != "finetune"))
                    for s in pruned}
    copies = {tuple(sorted((k, str(v)) for k, v in s.items() if k != "finetune")) for s in pruned}
    distilled = sum(1 for s in config["points"].values()
                    if "distill" in str((s or {}).get("finetune")))
    assert counts == {
        "clone_upstream": 1, "download_model": 1, "fetch_dataset": 1 + (n_ft + len(pruned) > 0),
        "parity": 1, "evaluate": n_points * n_shards, "merge": n_points, "flops": n_points,
        "finetune": n_ft, "teacher": 1 if distilled else 0, "importance": len(calibrations),
        "prune": len(copies), "aggregate": 1, "pareto": 1, "all": 1, "check_points": 1,
        # the search: its split, its plan and its workers (the checkpoint is not a "rule")
        "search_split": 1, "search_plan": 1, "search_worker": config["search"]["workers"]}


def test_demo_study_is_offline_and_not_merged_with_the_real_one(workflow):
    jobs = planned(workflow, "--configfile", "config/demo.yaml")
    counts = Counter(rule for rule, _ in jobs)
    demo = yaml.safe_load((workflow / "config" / "demo.yaml").read_text())
    assert not {"clone_upstream", "parity", "download_model", "fetch_dataset"} & set(counts)
    assert counts["build_demo_dataset"] == 1 and counts["train_demo_model"] == 1
    assert {p for _, p in jobs if p} == set(demo["points"])
    assert counts["evaluate"] == len(demo["points"]) * demo["shards"]


def test_slurm_profile_builds_the_job_graph(workflow):
    out = snakemake(workflow, "-n", "--profile", "profiles/slurm").stdout
    assert "aggregate" in out and "evaluate" in out


@pytest.mark.parametrize("bad", ["../escape", "has space", "-dash", "a/b"])
def test_bad_point_name_is_named_in_a_clear_error(workflow, bad):
    config = yaml.safe_load((workflow / "config" / "demo.yaml").read_text())
    config["points"][bad] = {}
    proc = snakemake(workflow, "-n", "--configfile", write_config(workflow, "bad.yaml", config),
                     check=False)
    assert proc.returncode != 0
    assert repr(bad) in proc.stdout + proc.stderr
    assert "point name" in proc.stdout + proc.stderr


def test_unknown_setting_is_a_config_error(workflow):
    config = yaml.safe_load((workflow / "config" / "demo.yaml").read_text())
    config["points"]["full"] = {"tile_sise": 32}
    proc = snakemake(workflow, "-n", "--configfile", write_config(workflow, "bad.yaml", config),
                     check=False)
    assert proc.returncode != 0
    assert "tile_sise" in proc.stdout + proc.stderr


# ---- a real run of a tiny study (needs the whole package) ----------------------------

TINY = {
    "study": "tiny",
    "model": "resources/models/easyvqa-tiny",
    "train": True,
    "train_recipe": "demo-smoke",
    "dataset": {"build": "easyvqa", "max_train": 64, "max_val": 16},
    "upstream": {"enabled": False},
    "max_samples": 8,
    "shards": 2,
    "batch_size": 8,
    "device": "cpu",
    "points": {"full": {}, "global": {"global_only": True}},
}


@pytest.mark.slow
def test_caching_is_right_both_ways(workflow):
    cfg = write_config(workflow, "tiny.yaml", TINY)
    snakemake(workflow, "--cores", "2", "--configfile", cfg)
    for f in ["summary.csv", "pareto.png", "pareto.svg"]:
        assert (workflow / "results" / "tiny" / f).exists()
    assert (workflow / "logs" / "tiny" / "aggregate.log").exists()
    # every result says what it ran on: versions, lock, machine, torch's view
    point = workflow / "results" / "tiny" / "points" / "full"
    for path in [point / "metrics.json", point / "flops.json",
                 workflow / "resources" / "models" / "easyvqa-tiny" / "training.json"]:
        environment = json.loads(path.read_text())["environment"]
        assert environment["device"] == "cpu" and environment["torch_threads"] >= 1, path
        assert environment["torch_cpu_capability"] and environment["numpy"], path
    assert "torch_cpu_capability" in (workflow / "results" / "tiny" / "study.html").read_text()

    # nothing changed: nothing to do
    assert planned(workflow, "--configfile", cfg) == []

    # one point's settings changed: only that point, then aggregate and the plot
    changed = dict(TINY, points={"full": {}, "global": {"global_only": True, "scoring": "cloze"}})
    cfg = write_config(workflow, "tiny.yaml", changed)
    jobs = planned(workflow, "--configfile", cfg)
    assert {p for _, p in jobs if p} == {"global"}
    assert Counter(r for r, _ in jobs) == {"evaluate": 2, "merge": 1, "flops": 1,
                                           "aggregate": 1, "pareto": 1, "all": 1}
    snakemake(workflow, "--cores", "2", "--configfile", cfg)

    # a new point: only the new one runs
    added = dict(changed, points={**changed["points"], "tile-32": {"tile_size": 32}})
    cfg = write_config(workflow, "tiny.yaml", added)
    assert {p for _, p in planned(workflow, "--configfile", cfg) if p} == {"tile-32"}
    snakemake(workflow, "--cores", "2", "--configfile", cfg)

    # editing the plotting code reruns the plot and nothing else
    pareto = workflow / "src" / "nanovlm_lite" / "report" / "pareto.py"
    pareto.write_text(pareto.read_text() + "\n# an edit\n")
    assert Counter(r for r, _ in planned(workflow, "--configfile", cfg)) == {"pareto": 1, "all": 1}

    # a changed lock (another environment): each rule that runs the model reruns because of
    # it, everything else only because a job before it reruns, and the dataset stays.
    # Snakemake names only the first cause, so the model is then marked up to date (--touch)
    # to see the evaluation's (flops takes the lock the same way: test_code_inputs.py).
    lock = workflow / "locks" / "cpu.txt"
    lock.write_text(lock.read_text() + "# another environment\n")
    after = {"merge": 3, "flops": 3, "aggregate": 1, "pareto": 1, "all": 1}
    assert lock_reasons(workflow, "--configfile", cfg) == (
        {"train_demo_model"}, {"train_demo_model": 1, "evaluate": 6, **after})
    snakemake(workflow, "--cores", "1", "--touch", "--until", "train_demo_model",
              "--configfile", cfg)
    assert lock_reasons(workflow, "--configfile", cfg) == ({"evaluate"}, {"evaluate": 6, **after})


def lock_reasons(root, *args) -> tuple[set, Counter]:
    """(rules of the jobs a dry run reruns because the lock changed, all jobs' rules)."""
    out = snakemake(root, "-n", "--cores", "1", *args).stdout
    by_lock, jobs = set(), Counter()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if m:
            jobs[m.group(1)] += 1
            reason = re.search(r"reason: (.*)", block).group(1)
            updated = re.search(r"Updated input files: ([^;]*)", reason)
            if updated and "locks/cpu.txt" in updated.group(1):
                by_lock.add(m.group(1))
    return by_lock, jobs


def _demo_with(workflow, **changes):
    config = yaml.safe_load((workflow / "config" / "demo.yaml").read_text())
    for key, value in changes.items():
        if key.startswith("points."):
            config["points"]["full"] = value
        else:
            config[key] = value
    return write_config(workflow, "bad.yaml", config)


@pytest.mark.parametrize("changes, message", [
    ({"shard": 2}, "config (top level): unknown key(s) 'shard'; allowed keys there: batch_size, "
                   "dataset, device,"),
    ({"dataset": {"build": "easyvqa", "max_trian": 5}}, "config dataset: unknown key(s) "
                                                        "'max_trian'; allowed keys there: build,"),
    ({"dataset": {"build": "scenes", "yes_no_keep": 0.17}},
     "config dataset/yes_no_keep: 0.17 is read by build: easyvqa only, and this study has "
     "build: scenes; remove it"),
    ({"dataset": {"repo": "data/missing.parquet"}},
     "config dataset/repo: 'data/missing.parquet' is a local path (not a hub id of the form "
     "org/name) and there is no such file"),
    ({"shards": 2.0}, "config shards: expected integer, got 2.0 (float)"),
    ({"device": "gpu"}, "config device: 'gpu' does not match"),
    ({"prompt_template": "defualt"}, "config prompt_template: prompt 'defualt' is not a template "
                                     "name; did you mean 'default'?"),
    ({"points.full": {"tile_size": 64.0}}, "config points/full/tile_size: expected integer or null, "
                                           "got 64.0 (float)"),
    ({"points.full": {"scoring": "vote"}}, "config points/full/scoring: 'vote' is not one of "
                                           "'letter', 'cloze', 'generate'"),
    ({"train_overrides": {"stepz": 2}}, "config train_overrides: unknown training option(s) "
                                        "'stepz'; known: accumulate,"),
    ({"train_overrides": {"steps": 2.5}}, "config train_overrides: training option 'steps': "
                                          "expected an integer, got 2.5"),
    ({"train": False, "model": "resources/models/missing"},
     "config model: 'resources/models/missing' is a local path and there is no such directory"),
    ({"search": {"space": {"tile_size": [32]}, "rungs": [450, 150]}},
     "config search/rungs: must grow, each larger than the last"),
    ({"search": {"space": {"finetune": ["demo-finetune"]}}},
     "config search/space/finetune: not searchable"),
])
def test_config_errors_are_one_paragraph(workflow, changes, message):
    proc = snakemake(workflow, "-n", "--configfile", _demo_with(workflow, **changes), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out
    assert "$schema" not in out and "Traceback" not in out
    assert len(out.splitlines()) < 10, out  # a paragraph, not the schema dump


@pytest.mark.slow
def test_the_search_finds_a_point_and_the_study_evaluates_it(workflow):
    """A tiny study with a search run by two workers: the found point is evaluated like a
    hand-listed one and marked found; the search selects on questions held out of the
    training split (no recipe trains on them, the evaluation never sees them); a rerun has
    nothing to do, and a changed budget reruns the search alone."""
    search = {"base": {"scoring": "cloze"}, "space": {"tile_size": [32, 64], "vit_blocks": [1, None]},
              "rungs": [10, "all"], "holdout_questions": 30, "budget": 200, "workers": 2}
    config = dict(TINY, dataset={**TINY["dataset"], "max_train": 120}, threshold=0.3,
                  search=search, shards=1)
    cfg = write_config(workflow, "tiny.yaml", config)
    snakemake(workflow, "--cores", "2", "--configfile", cfg)
    results = workflow / "results" / "tiny"
    found = yaml.safe_load((results / "search" / "found.yaml").read_text())
    assert found["question_evaluations"] <= 200 and found["evaluated"] >= 1
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["point"]) == {"full", "global", *found["points"]}
    assert set(summary.loc[summary["found"], "point"]) == set(found["points"])
    assert "held-out search split" in (results / "study.html").read_text()
    # the search's questions: none trained on, none evaluated, whole images apart
    data = workflow / "data" / "easyvqa"
    held, fit, val = (load_questions(p) for p in [data / "search-0-30" / "search.parquet",
                                                 data / "search-0-30" / "fit.parquet",
                                                 data / "val.parquet"])
    assert len(held) >= 30 and len(held) + len(fit) == 120
    for other in (fit, val):
        assert not {q.question_id for q in held} & {q.question_id for q in other}
        assert not {q.image_bytes for q in held} & {q.image_bytes for q in other}
    training = json.loads((workflow / "resources" / "models" / "easyvqa-tiny" /
                           "training.json").read_text())
    assert training["train_questions"] == len(fit)
    assert planned(workflow, "--configfile", cfg) == []
    # a bigger budget: the search again (its trials cached), nothing else but the report
    cfg = write_config(workflow, "tiny.yaml", dict(config, search={**search, "budget": 300}))
    rules = Counter(r for r, _ in planned(workflow, "--configfile", cfg))
    assert rules["search_plan"] == 1 and rules["search_worker"] == 2
    assert not {"train_demo_model", "evaluate", "search_split"} & set(rules)


def test_demo_on_generated_scenes_builds_them_through_the_rule(workflow):
    """`dataset: {build: scenes}` plans the same jobs under data/scenes/, and the rule
    writes the generator's bytes for the configured sizes and seed."""
    from nanovlm_lite.data.scenes import build_scenes_dataset
    dataset = {"build": "scenes", "train_images": 12, "val_images": 4, "seed": 5}
    path = _demo_with(workflow, dataset=dataset)
    jobs = Counter(rule for rule, _ in planned(workflow, "--configfile", path))
    assert jobs["build_demo_dataset"] == 1 and jobs["train_demo_model"] == 1
    snakemake(workflow, "--configfile", path, "--cores", "1", "data/scenes/val.parquet")
    expected = build_scenes_dataset(workflow / "expected", train_images=12, val_images=4, seed=5)
    for split in ("train", "val"):
        assert (workflow / "data" / "scenes" / f"{split}.parquet").read_bytes() == \
            expected[split].read_bytes()
