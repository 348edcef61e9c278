"""The compression rules' job graph: the teacher's outputs and the importance file are
computed once and shared, a student's change never recomputes them, a teacher's or a
calibration change does, and impossible set-ups are one-paragraph config errors.

Dry runs on a tiny study whose upstream artifacts are stand-in files written in place
(no job runs): what the DAG plans is decided by the artifacts' paths, which hash what
makes them (rules/compress_keys.smk), so this is what makes the sharing true. The
rehearsal runs the rules for real.
"""
import re
import time
from collections import Counter

import yaml

from test_workflow import planned, snakemake, workflow, write_config  # noqa: F401  (fixture)

STUDY = {
    "study": "tiny",
    "model": "resources/models/easyvqa-tiny",
    "train": True,
    "train_recipe": "demo-smoke",
    "dataset": {"build": "easyvqa", "max_train": 64, "max_val": 16},
    "upstream": {"enabled": False},
    "max_samples": 8,
    "device": "cpu",
    "reference_point": "full",
    "prune": {"calibration_samples": 8},
    "points": {
        "full": {"scoring": "cloze"},
        "kd": {"vit_blocks": 1, "finetune": "demo-distill", "scoring": "cloze"},
        "kd-global": {"global_only": True, "finetune": "demo-distill", "scoring": "cloze"},
        "ft": {"vit_blocks": 1, "finetune": "demo-finetune", "scoring": "cloze"},
        "pruned": {"prune_vit_mlp": 0.5, "prune_lm_mlp": 0.5, "scoring": "cloze"},
        "pruned-kd": {"prune_vit_mlp": 0.5, "prune_lm_mlp": 0.5, "finetune": "demo-distill",
                      "scoring": "cloze"},
    },
}


def dry_run(root, config):
    """(job counts, teacher directories, importance files) a dry run plans."""
    out = snakemake(root, "-n", "--cores", "1", "--configfile",
                    write_config(root, "tiny.yaml", config)).stdout
    counts = Counter(re.findall(r"^(?:local)?rule (\w+):$", out, flags=re.M))
    teachers = set(re.findall(r"output: (results/tiny/teachers/[^/\s]+)/outputs", out))
    importance = set(re.findall(r"output: (results/tiny/importance/\S+\.safetensors)", out))
    return counts, teachers, importance, out


def stand_in(root, *paths):
    """Write empty files (directories for names without a suffix), each newer than the
    last, so the DAG sees them as made in order."""
    for path in paths:
        target = root / path
        if target.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
        else:
            target.mkdir(parents=True, exist_ok=True)
        time.sleep(0.01)


def test_teacher_and_importance_are_computed_once_and_shared(workflow):
    counts, teachers, importance, _ = dry_run(workflow, STUDY)
    # three students of one teacher, two pruned points of one calibration and one ratio
    # (one pruned checkpoint: the cut is evaluated on it, the distilled point starts from it)
    assert counts["teacher"] == 1 and len(teachers) == 1
    assert counts["importance"] == 1 and len(importance) == 1
    assert counts["prune"] == 1 and counts["finetune"] == 4
    (teacher,) = teachers
    assert teacher.startswith("results/tiny/teachers/full-answer-")
    stand_in(workflow, "data/easyvqa/train.parquet", "data/easyvqa/val.parquet",
             "resources/models/easyvqa-tiny",
             "results/tiny/checks/points.json", f"{teacher}/outputs.safetensors",
             f"{teacher}/teacher.json", *importance)
    counts, _, _, _ = dry_run(workflow, STUDY)
    assert not {"teacher", "importance", "train_demo_model", "build_demo_dataset"} & set(counts)

    # a student changes (its settings, its recipe's options): the teacher stays
    student = yaml.safe_load(yaml.safe_dump(STUDY))
    student["points"]["kd"]["vit_blocks"] = 2
    student["train_overrides"] = {"alpha": 0.9, "temperature": 4.0}
    counts, _, _, _ = dry_run(workflow, student)
    assert "teacher" not in counts and counts["finetune"] >= 1

    # the teacher's settings change: a new teacher, and every student trains again
    changed = yaml.safe_load(yaml.safe_dump(STUDY))
    changed["points"]["full"]["tile_size"] = 32
    counts, teachers, _, out = dry_run(workflow, changed)
    assert counts["teacher"] == 1 and teachers and teachers != {teacher}
    tuned = set(re.findall(r"output: results/tiny/points/([^/]+)/finetuned", out))
    assert {"kd", "kd-global", "pruned-kd"} <= tuned
    assert "importance" not in counts

    # another objective or top-k for the answer tokens is another teacher too
    topk = yaml.safe_load(yaml.safe_dump(STUDY))
    topk["train_overrides"] = {"teacher_top_k": 8}
    assert dry_run(workflow, topk)[0]["teacher"] == 1


def test_pruned_points_share_their_calibration(workflow):
    _, _, importance, _ = dry_run(workflow, STUDY)
    stand_in(workflow, "data/easyvqa/train.parquet", "data/easyvqa/val.parquet",
             "resources/models/easyvqa-tiny",
             "results/tiny/checks/points.json", *importance)
    counts, _, _, out = dry_run(workflow, STUDY)
    assert "importance" not in counts and counts["prune"] == 1   # both start from one copy
    (calibration,) = [i.rsplit("/", 1)[1].removesuffix(".safetensors") for i in importance]
    (copy,) = set(re.findall(r"output: results/tiny/pruned/([^\s,]+)", out))
    assert copy.startswith(f"{calibration}-"), copy  # keyed by its calibration and ratios
    # another ratio or recipe is the same calibration: no new importance
    ratio = yaml.safe_load(yaml.safe_dump(STUDY))
    ratio["points"]["pruned"]["prune_lm_mlp"] = 0.25
    ratio["points"]["pruned-kd"]["finetune"] = "demo-finetune"
    counts, _, _, _ = dry_run(workflow, ratio)
    assert "importance" not in counts and counts["prune"] == 2
    # another calibration set is another importance file, read by both
    calibration = dict(STUDY, prune={"calibration_samples": 16})
    counts, _, new, _ = dry_run(workflow, calibration)
    assert counts["importance"] == 1 and new and new != importance and counts["prune"] == 1


def _error(workflow, config):
    proc = snakemake(workflow, "-n", "--configfile", write_config(workflow, "bad.yaml", config),
                     check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out
    return out


def test_impossible_setups_are_config_errors(workflow):
    no_reference = dict(STUDY, reference_point=None)
    assert "recipe 'demo-distill' distils from the study's reference point, and " \
           "reference_point is null" in _error(workflow, no_reference)
    tuned_teacher = yaml.safe_load(yaml.safe_dump(STUDY))
    tuned_teacher["reference_point"] = "ft"
    assert "the teacher point 'ft' must be the base model as it is" in _error(workflow,
                                                                               tuned_teacher)
    unknown = yaml.safe_load(yaml.safe_dump(STUDY))
    unknown["points"]["kd"]["finetune"] = "demo-distil"
    assert "point 'kd': finetune: unknown training recipe 'demo-distil'" in _error(workflow,
                                                                                   unknown)
    ratio = yaml.safe_load(yaml.safe_dump(STUDY))
    ratio["points"]["pruned"]["prune_vit_mlp"] = 0
    assert "config points/pruned/prune_vit_mlp" in _error(workflow, ratio)
    scratch = yaml.safe_load(yaml.safe_dump(STUDY))
    scratch["points"]["pruned"]["finetune"] = "demo-blind"
    assert "trains a new model from scratch, so the pruned checkpoint would be thrown away" in \
        _error(workflow, scratch)
