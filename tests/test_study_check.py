"""A study's mistakes stop it before the work, all named at once (issue 22): what the config
alone decides when the workflow is read (`snakemake -n` fails), what needs the model's
shapes in the check_points rule, before any job that uses a point, and both offline in
`nanovlm-lite flops --config FILE --all-points`."""
import json
import re
from collections import Counter

import pytest
import yaml

from nanovlm_lite.cli import main as cli_main
from nanovlm_lite.model.config import load_config, preset_path, save_config
from nanovlm_lite.settings import PointSettings, SettingsError
from nanovlm_lite.strict_yaml import DuplicateKeyError, load_text
from nanovlm_lite.study_check import (StudyCheckError, check_model_dir, check_points,
                                      config_problems, model_problems)
from nanovlm_lite.train.demo import demo_config
from test_workflow import REPO, snakemake, workflow  # noqa: F401  (the fixture)

DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
REAL = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
TINY_CFG = demo_config(500)   # the demo architecture: 64 px tiles, patch 8, shuffle 2, 3 + 3 blocks
BIG_CFG = load_config(preset_path("nanovlm-460m"))


def _settings(points):
    return {name: PointSettings.from_dict(raw) for name, raw in points.items()}


# ---- duplicate keys -------------------------------------------------------------------
def test_duplicate_keys_are_named_with_both_lines_at_any_level():
    text = ("study: demo\n"          # 1
            "points:\n"              # 2
            "  full: {scoring: cloze}\n"   # 3
            "  letter: {}\n"               # 4
            "  full: {scoring: letter}\n"  # 5
            "resources:\n"                 # 6
            "  merge: {mem_mb: 1, mem_mb: 2}\n"  # 7
            "study: other\n")              # 8
    with pytest.raises(DuplicateKeyError) as e:
        load_text(text, "over.yaml")
    message = str(e.value)
    assert "over.yaml: key 'full' appears twice under points (lines 3 and 5)" in message
    assert "over.yaml: key 'mem_mb' appears twice under resources/merge (lines 7 and 7)" in message
    assert "over.yaml: key 'study' appears twice under the top level (lines 1 and 8)" in message


def test_without_duplicates_the_strict_reader_is_safe_load():
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\nl: [1, {a: 2}]\n"
    assert load_text(text) == yaml.safe_load(text)  # a merge key's override is no duplicate
    assert load_text("") is None


# ---- what the config alone decides --------------------------------------------------------
def test_the_demo_and_the_real_config_pass():
    assert config_problems(DEMO["points"], DEMO["reference_point"], {}) == []
    assert config_problems(REAL["points"], REAL["reference_point"],
                           REAL.get("train_overrides")) == []


def test_config_problems_are_all_named():
    points = dict(DEMO["points"], tuned={"finetune": "no-such-recipe"},
                  pooled={"pool": "avg", "finetune": "demo-learned-pool"},
                  sighted={"finetune": "demo-blind"})
    problems = config_problems(points, "nope", {})
    assert problems[0].startswith("config: reference_point 'nope' is not a point of this study")
    assert "point 'tuned': finetune: unknown training recipe 'no-such-recipe'; known:" in problems[1]
    assert ("point 'pooled': recipe 'demo-learned-pool' trains at pool: learned, and the point "
            "has pool: avg") in problems[2]
    assert ("point 'sighted': recipe 'demo-blind' trains at blank_images: true, and the point "
            "leaves blank_images at its default") in problems[3]
    assert len(problems) == 4


@pytest.mark.parametrize("reference, named", [
    ("blind", "finetune: demo-blind, blank_images: true"),
    ("vit-1-ft", "finetune: demo-finetune"),
])
def test_the_reference_is_a_plain_point(reference, named):
    problems = config_problems(DEMO["points"], reference, {})
    assert problems[0] == (f"config: reference_point {reference!r} is not the model as it is "
                           f"({named}); every point is compared with it and a distilling recipe "
                           f"learns from it, so name a plain point (no finetune, no prune_*, no "
                           f"blank_images)")
    # and each distilling point of the demo names its teacher, the reference, as unfit
    distilling = [p for p, s in DEMO["points"].items() if (s or {}).get("finetune") == "demo-distill"]
    assert distilling and problems[1:] == [
        f"config: point {p!r}: the teacher point {reference!r} must be the base model as it is "
        f"(no finetune, no prune_*)" for p in distilling]


def test_train_overrides_reach_the_recipe_check():
    # every fine-tune trains only a learned pool: a point without one cannot
    problems = config_problems({"a": {"finetune": "demo-finetune"}}, None,
                               {"trainable": "learned-pool"})
    assert problems == ["config: point 'a': recipe 'demo-finetune' trains only the learned "
                        "pooling module (trainable: learned-pool), and the point has no pool: "
                        "learned"]


# ---- what needs the model's shapes ---------------------------------------------------------
def test_the_demo_and_the_real_points_fit_their_models():
    assert model_problems(TINY_CFG, _settings(DEMO["points"])) == []
    assert model_problems(BIG_CFG, _settings(REAL["points"])) == []


BAD_POINTS = {   # issue 22's third row, then mistakes it does not list
    "big-tile": ({"tile_size": 100}, "tile_size 100 must be a multiple of patch size x "
                                     "pixel-shuffle factor = 16"),
    "deep": ({"vit_blocks": 99}, "vit_blocks 99 > the model's 3 ViT blocks"),
    "late-fastv": ({"fastv_layer": 5, "fastv_ratio": 0.5}, "fastv_layer 5 not in 0..2"),
    "last-fastv": ({"fastv_layer": 2, "fastv_ratio": 0.5},
                   "fastv_layer 2 is at or after the last LM block that runs (2)"),
    "odd-hourglass": ({"vit_hourglass_block": 0, "vit_hourglass_factor": 3},
                      "vit_hourglass_factor 3 must divide the 8x8 patch grid of a 64px tile"),
    "late-hourglass": ({"vit_hourglass_block": 1, "vit_blocks": 1},
                       "vit_hourglass_block 1 is not one of the 1 ViT blocks that run (0..0)"),
    "late-merge": ({"vit_merge_ratio": 0.5, "vit_merge_start": 3},
                   "vit_merge_start 3 is not one of the 3 ViT blocks that run (0..2)"),
    "skip-far": ({"skip_lm_blocks": [3]}, "skip_lm_blocks has 3; the LM has blocks 0..2"),
    "skip-all": ({"skip_lm_blocks": [0, 1, 2]}, "skip_lm_blocks skips every LM block"),
    "pool-3": ({"pool": "avg", "pool_factor": 3},
               "pool_factor 3 must divide the 4x4 token grid of a 64px tile"),
    "smoke-deep": ({"finetune": "demo-smoke", "vit_blocks": 2},   # its own 1-block ViT
                   "vit_blocks 2 > the model's 1 ViT blocks"),
}


def test_every_bad_point_and_setting_is_named_in_one_message():
    points = {name: PointSettings.from_dict(raw) for name, (raw, _) in BAD_POINTS.items()}
    points["fine"] = PointSettings(global_only=True, tile_size=32)
    with pytest.raises(StudyCheckError) as e:
        check_points(TINY_CFG, points, source="m/config.json")
    message = str(e.value)
    assert message.startswith(f"{len(BAD_POINTS)} of {len(points)} points cannot run on "
                              f"m/config.json: 64px tiles, patch 8, pixel shuffle 2, 3 ViT "
                              f"blocks, 3 LM blocks")
    for name, (_, why) in BAD_POINTS.items():
        assert f"  - point {name!r}: {why}" in message, name
    assert "'fine'" not in message
    assert len(message.splitlines()) == 1 + len(BAD_POINTS)


def test_a_job_raises_the_same_problems():
    # the per-job check (check_against) and the study's check ask the same function
    settings = PointSettings(tile_size=100, vit_blocks=99)
    with pytest.raises(SettingsError, match="point x: tile_size 100 must be a multiple of patch "
                                            "size x pixel-shuffle factor = 16; vit_blocks 99 >"):
        settings.check_against(TINY_CFG, where="point x")
    assert settings.problems_against(TINY_CFG) == [
        "tile_size 100 must be a multiple of patch size x pixel-shuffle factor = 16",
        "vit_blocks 99 > the model's 3 ViT blocks"]


def test_the_check_reads_the_checkpoint_directory(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    save_config(TINY_CFG, model)   # config.json only: no weights are read
    out = tmp_path / "checks" / "points.json"
    record = check_model_dir(model, {"full": {}, "small": {"tile_size": 32}}, out)
    assert json.loads(out.read_text()) == record
    assert record["points"]["small"] == {"settings": {"tile_size": 32}, "ok": True}
    assert record["geometry"]["vit_n_blocks"] == 3
    # pool: learned with no recipe to train it needs the module beside the checkpoint
    with pytest.raises(StudyCheckError, match="point 'learned': pool: learned needs a trained "
                                              "learned-pool module"):
        check_model_dir(model, {"learned": {"pool": "learned"}})
    # a point that prunes nothing cannot run on a pruned checkpoint
    (model / "pruning.json").write_text(json.dumps({"ratios": {"prune_lm_mlp": 0.5}}))
    with pytest.raises(StudyCheckError, match="point 'full': .* prune ratios"):
        check_model_dir(model, {"full": {}})


# ---- nanovlm-lite flops --all-points ---------------------------------------------------
def _flops(capsys, study):
    code = cli_main(["flops", "--model", "nanovlm-460m", "--config", str(study), "--all-points",
                     "--text-tokens", "40", "--json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flops_all_points_checks_the_whole_study_first(capsys, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("reference_point: nope\npoints:\n  default: {}\n"
                     "  big-tile: {global_only: true, tile_size: 100}\n"
                     "  deep: {vit_blocks: 99}\n  tuned: {finetune: no-such-recipe}\n"
                     "  typo: {tile_sise: 256}\n  late: {fastv_layer: 40, fastv_ratio: 0.5}\n")
    code, out, err = _flops(capsys, study)
    assert code == 2 and out == ""   # nothing counted
    assert err.startswith(f"nanovlm-lite flops: {study}: 6 problem(s) in this study checked "
                          f"against nanovlm-460m: 512px tiles, patch 16, pixel shuffle 4, "
                          f"12 ViT blocks, 32 LM blocks")
    for line in ["point 'typo': unknown setting(s) ['tile_sise']",
                 "reference_point 'nope' is not a point of this study",
                 "point 'tuned': finetune: unknown training recipe 'no-such-recipe'",
                 "point 'big-tile': tile_size 100 must be a multiple of patch size x "
                 "pixel-shuffle factor = 64",
                 "point 'deep': vit_blocks 99 > the model's 12 ViT blocks",
                 "point 'late': fastv_layer 40 not in 0..31"]:
        assert line in err, line
    assert "Traceback" not in err
    study.write_text("points:\n  default: {}\n  default: {global_only: true}\n")
    code, out, err = _flops(capsys, study)
    assert code == 2 and out == ""
    assert f"{study}: key 'default' appears twice under points (lines 2 and 3)" in err


def test_flops_all_points_counts_the_real_study(capsys):
    code, out, err = _flops(capsys, REPO / "config" / "config.yaml")
    assert code == 0, err
    assert [json.loads(line)["point"] for line in out.splitlines()] == list(REAL["points"])


# ---- in the workflow ----------------------------------------------------------------------
def _overlay(root, text):
    (root / "config" / "overlay.yaml").write_text(text)
    return ["--configfile", "config/demo.yaml", "config/overlay.yaml"]


@pytest.mark.parametrize("overlay, message", [
    ("reference_point: nope\n",
     "config: reference_point 'nope' is not a point of this study (points: full, global-32,"),
    ("points:\n  tuned: {finetune: no-such-recipe}\n",
     "config: point 'tuned': finetune: unknown training recipe 'no-such-recipe'; known: "),
    ("points:\n  full: {scoring: cloze}\n  letter: {}\n  full: {scoring: letter}\n",
     "config/overlay.yaml: key 'full' appears twice under points (lines 2 and 4); YAML keeps "
     "only the last of equal keys, so the first would vanish without a word: rename or "
     "remove one"),
])
def test_config_mistakes_stop_the_dry_run(workflow, overlay, message):
    proc = snakemake(workflow, "-n", "--cores", "1", *_overlay(workflow, overlay), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out
    assert "Traceback" not in out and len(out.splitlines()) < 10, out


def test_config_mistakes_are_named_together(workflow):
    overlay = "reference_point: nope\npoints:\n  tuned: {finetune: no-such-recipe}\n"
    proc = snakemake(workflow, "-n", "--cores", "1", *_overlay(workflow, overlay), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config: 2 problems" in out, out
    assert "reference_point 'nope'" in out and "point 'tuned'" in out


def _inputs(out, rule):
    """The input line of each job of `rule` in a dry run's output."""
    found = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        if re.match(rf"(?:local)?rule {rule}:", block.strip()):
            found.append(re.search(r"^\s+input: (.*)$", block, re.M).group(1))
    return found


def test_the_check_runs_before_every_job_that_uses_a_point(workflow):
    out = snakemake(workflow, "-n", "--cores", "1", "--configfile", "config/demo.yaml").stdout
    counts = Counter(re.findall(r"^(?:local)?rule (\w+):", out, re.M))
    points = DEMO["points"]
    n_ft = sum(1 for s in points.values() if s and s.get("finetune"))
    # one pruned checkpoint per distinct set of ratios (the demo's cut, -ft and -kd share one)
    n_pruned = len({tuple(sorted((k, v) for k, v in s.items() if k.startswith("prune_")))
                    for s in points.values() if s and any(k.startswith("prune_") for k in s)})
    assert n_pruned and counts == {
                      "build_demo_dataset": 1, "train_demo_model": 1, "check_points": 1,
                      "teacher": 1, "importance": 1, "prune": n_pruned,
                      "evaluate": len(points) * DEMO["shards"], "finetune": n_ft,
                      "merge": len(points), "flops": len(points), "aggregate": 1, "pareto": 1,
                      "all": 1, "search_split": 1, "search_plan": 1,
                      "search_worker": DEMO["search"]["workers"]}
    assert _inputs(out, "check_points") == ["resources/models/easyvqa-tiny"]
    for rule in ("evaluate", "flops", "finetune", "search_plan", "teacher", "importance", "prune"):
        inputs = _inputs(out, rule)
        assert inputs and all("results/demo/checks/points.json" in i for i in inputs), rule
    # the real study: the rule after the download, before every job that uses a point or
    # the GPU
    out = snakemake(workflow, "-n", "--cores", "1").stdout
    assert _inputs(out, "check_points") == ["resources/models/lusxvr--nanoVLM"]
    for rule in ("evaluate", "flops", "finetune", "teacher", "importance", "prune", "parity"):
        inputs = _inputs(out, rule)
        assert inputs and all("results/aokvqa/checks/points.json" in i for i in inputs), rule


MISFITS = "  big-tile: {tile_size: 100}\n  deep: {vit_blocks: 99}\n"


def test_a_model_already_there_checks_every_point_at_start(workflow):
    model = workflow / "models" / "tiny"
    model.mkdir(parents=True)
    save_config(TINY_CFG, model)   # config.json only: no weights are read
    overlay = "train: false\nmodel: models/tiny\npoints:\n" + MISFITS
    proc = snakemake(workflow, "-n", "--cores", "1", *_overlay(workflow, overlay), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"2 of {len(DEMO['points']) + 2} points cannot run on models/tiny/config.json: 64px "
            f"tiles, patch 8, pixel shuffle 2, 3 ViT blocks, 3 LM blocks; fix or remove them "
            f"(nothing else was started):\n"
            f"  - point 'big-tile': tile_size 100 must be a multiple of patch size x "
            f"pixel-shuffle factor = 16\n"
            f"  - point 'deep': vit_blocks 99 > the model's 3 ViT blocks") in out, out
    assert "Traceback" not in out


def test_a_model_this_run_trains_is_checked_before_any_evaluation(workflow):
    study = {"study": "tiny", "model": "resources/models/easyvqa-tiny", "train": True,
             "train_recipe": "demo-smoke",   # 64 px, patch 16, shuffle 2, 1 ViT + 2 LM blocks
             "dataset": {"build": "easyvqa", "max_train": 32, "max_val": 8},
             "upstream": {"enabled": False}, "max_samples": 4, "shards": 1, "device": "cpu",
             "points": {"full": {}, "big-tile": {"tile_size": 100}, "deep": {"vit_blocks": 99}}}
    (workflow / "config" / "tiny.yaml").write_text(yaml.safe_dump(study))
    args = ["--cores", "1", "--configfile", "config/tiny.yaml"]
    snakemake(workflow, "-n", *args)   # no model yet: the dry run cannot know
    proc = snakemake(workflow, *args, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("2 of 3 points cannot run on resources/models/easyvqa-tiny/config.json: 64px tiles, "
            "patch 16, pixel shuffle 2, 1 ViT blocks, 2 LM blocks; fix or remove them (nothing "
            "else was started):\n"
            "  - point 'big-tile': tile_size 100 must be a multiple of patch size x pixel-shuffle "
            "factor = 32\n"
            "  - point 'deep': vit_blocks 99 > the model's 1 ViT blocks") in out, out
    assert "Traceback" not in out
    assert (workflow / "resources" / "models" / "easyvqa-tiny" / "config.json").exists()
    assert not (workflow / "results" / "tiny" / "points").exists()
    assert not (workflow / "logs" / "tiny" / "evaluate").exists()
