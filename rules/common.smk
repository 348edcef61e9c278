# Config validation and the few helpers the rules need. No rules here.
import glob
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_names(config):
    """Point (and study) names become directory names: say clearly which one is bad."""
    points = config.get("points")
    if not isinstance(points, dict) or not points:
        raise WorkflowError(
            "config: `points` must be a non-empty mapping of point name -> settings")
    bad = [repr(p) for p in points if not (isinstance(p, str) and NAME.match(p))]
    if bad:
        raise WorkflowError(
            f"config: point name(s) {', '.join(bad)} cannot be used: a point name becomes a "
            f"directory (results/<study>/points/<point>/), so it must match {NAME.pattern} "
            "(letters, digits, '.', '_' and '-', starting with a letter or digit)")
    study = config.get("study")
    if not (isinstance(study, str) and NAME.match(study)):
        raise WorkflowError(f"config: study name {study!r} must match {NAME.pattern}")
    for name in points:  # `name:` with nothing after it means the default settings
        points[name] = dict(points[name] or {})


def _check_settings(points):
    """Value checks the schema cannot express (the package owns them)."""
    try:
        from nanovlm_lite.settings import PointSettings, SettingsError
    except ImportError:  # package not installed in this environment: the jobs will say so
        return
    for name, settings in points.items():
        try:
            PointSettings.from_dict(settings, where=f"config: point {name!r}")
        except SettingsError as e:
            raise WorkflowError(str(e)) from None


_check_names(config)
validate(config, "../config/schema.yaml")
_check_settings(config["points"])

STUDY = config["study"]
POINTS = config["points"]
UPSTREAM = config["upstream"]
DATASET = config["dataset"]


wildcard_constraints:
    study=re.escape(STUDY),
    point="|".join(re.escape(p) for p in POINTS),
    shard=r"\d+",


# ---- package sources: an artifact depends on the code it comes from --------------------
SRC = os.path.join(workflow.basedir, "src", "nanovlm_lite")


def package_sources(*patterns):
    """Files of the package matching `patterns` (relative to src/nanovlm_lite; a directory
    means every file under it), sorted. Given as inputs, so editing that code reruns the
    artifacts made from it, and only those."""
    found = set()
    for pattern in patterns:
        for path in glob.glob(os.path.join(SRC, pattern), recursive=True):
            if os.path.isdir(path):
                found.update(p for p in glob.glob(os.path.join(path, "**"), recursive=True)
                             if os.path.isfile(p))
            elif os.path.isfile(path):
                found.add(path)
    found = {p for p in found if "__pycache__" not in p and not p.endswith(".pyc")}
    return sorted(os.path.relpath(p) for p in found)


# ---- the model ------------------------------------------------------------------------
HUB_ID = re.compile(r"^(?P<org>[\w.-]+)/(?P<name>[\w.-]+)$")


def hub_slug(repo_id):
    """org/name -> org--name (the directory a hub download goes to)."""
    m = HUB_ID.match(repo_id)
    return f"{m['org']}--{m['name']}"


MODEL_IS_LOCAL = bool(
    config["train"] or os.path.isdir(config["model"]) or not HUB_ID.match(config["model"])
)
BASE_MODEL = config["model"] if MODEL_IS_LOCAL else f"resources/models/{hub_slug(config['model'])}"


def point_settings(wildcards):
    """The point's settings as written in the config (a params value: editing them
    reruns that point's jobs, and only those)."""
    return dict(sorted(POINTS[wildcards.point].items()))


def point_model(wildcards):
    """The checkpoint a point is evaluated with: its fine-tuned copy, or the base model."""
    if POINTS[wildcards.point].get("finetune"):
        return f"results/{wildcards.study}/points/{wildcards.point}/finetuned"
    return BASE_MODEL


# ---- the dataset ----------------------------------------------------------------------
def _dataset_slug(repo):
    if os.path.isfile(repo) or repo.endswith(".parquet") or not HUB_ID.match(repo):
        stem = os.path.splitext(os.path.basename(repo))[0]
        return f"local--{stem}"
    return hub_slug(repo)


if DATASET.get("build") == "easyvqa":
    DATA_DIR = "data/easyvqa"
    EVAL_DATA = f"{DATA_DIR}/val.parquet"
    TRAIN_DATA = f"{DATA_DIR}/train.parquet"
else:
    DATA_DIR = f"data/{_dataset_slug(DATASET['repo'])}"
    EVAL_DATA = f"{DATA_DIR}/{DATASET['split']}.parquet"
    TRAIN_DATA = f"{DATA_DIR}/{DATASET['train_split']}.parquet"


def dataset_source(split):
    """(repo or local parquet, expected rows) for a split of the configured dataset."""
    if split == DATASET["split"]:
        return DATASET["repo"], DATASET["expected_rows"]
    return DATASET["train_repo"] or DATASET["repo"], DATASET["train_expected_rows"]


PARITY_REPORT = f"results/{STUDY}/parity/report.json"
UPSTREAM_DIR = "resources/upstream/nanoVLM"


def all_points(filename):
    """Input function: `filename` of every point of the study (e.g. "metrics.json")."""

    def paths(wildcards):
        return expand(
            "results/{study}/points/{point}/{filename}",
            study=wildcards.study,
            point=POINTS,
            filename=filename,
        )

    return paths


def shard_paths(wildcards):
    return expand(
        "results/{study}/points/{point}/shards/{shard}.jsonl",
        study=wildcards.study,
        point=wildcards.point,
        shard=range(config["shards"]),
    )
