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


def _schema_error(error):
    """One paragraph for a jsonschema error: where in the config, what is there, what was
    expected (for an unknown key, the allowed keys), instead of Snakemake's schema dump."""
    where = os.sep.join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return (f"config {where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed "
                f"keys there: {allowed}")
    if error.validator == "enum":
        return (f"config {where}: {error.instance!r} is not one of "
                f"{', '.join(map(repr, error.validator_value))}")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return (f"config {where}: expected {expected}, got {error.instance!r} "
                f"({type(error.instance).__name__})")
    if error.validator == "required":
        return f"config {where}: {error.message}"
    described = error.schema.get("description")
    return f"config {where}: {error.message}" + (f" ({described.strip()})" if described else "")


def _validate(config):
    """jsonschema validation with integers strict (2.0 is not an integer, true is not a
    number), then Snakemake's validate, which fills in the defaults."""
    import jsonschema
    import yaml

    schema_path = os.path.join(workflow.basedir, "config", "schema.yaml")
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    strict = jsonschema.validators.extend(base, type_checker=checker)(schema)
    error = jsonschema.exceptions.best_match(strict.iter_errors(config))
    if error is not None:
        raise WorkflowError(_schema_error(error)) from None
    try:
        validate(config, "../config/schema.yaml")
    except WorkflowError:
        error = jsonschema.exceptions.best_match(base(schema).iter_errors(config))
        raise WorkflowError(_schema_error(error) if error else "config: does not match "
                            f"{schema_path}") from None


def _local_parent(path):
    parent = os.path.dirname(os.path.expanduser(path))
    return bool(parent) and os.path.isdir(parent)


def _path_like(name):
    """The package's rule for a name meant as a local path, never a hub id."""
    from nanovlm_lite.hub import is_path_like
    return is_path_like(name) or _local_parent(name)


def _is_local_path(repo):
    """A dataset `repo` meant as a local file, never a hub id."""
    return repo.endswith(".parquet") or _path_like(repo)


def _check_paths(config):
    """A local dataset file or model directory that is not there, named now."""
    dataset = config["dataset"]
    if dataset.get("build") is None:
        for key in ("repo", "train_repo"):
            repo = dataset.get(key)
            if repo and _is_local_path(repo) and not os.path.isfile(os.path.expanduser(repo)):
                raise WorkflowError(
                    f"config dataset/{key}: {repo!r} is a local path (not a hub id of the "
                    f"form org/name) and there is no such file; give an existing A-OKVQA "
                    f"parquet or a hub dataset id")
    model = config["model"]
    if not config["train"] and not os.path.isdir(os.path.expanduser(model)) and _path_like(model):
        raise WorkflowError(
            f"config model: {model!r} is a local path and there is no such directory; give a "
            f"checkpoint directory (config.json + model.safetensors) or a hub id (org/name), "
            f"or set train: true to train the demo model there")


# the dataset options each builder reads, with the value that means "not set"
BUILDER_OPTIONS = {"easyvqa": {"max_train": None, "max_val": None, "yes_no_keep": 1.0},
                   "scenes": {"train_images": None, "val_images": None}}


def _check_builder_options(config):
    """A dataset option of one builder under another (or under a hub dataset) would be
    silently ignored: named now."""
    dataset = config["dataset"]
    build = dataset.get("build")
    for builder, options in BUILDER_OPTIONS.items():
        if builder == build:
            continue
        for key, unset in options.items():
            if dataset.get(key, unset) != unset:
                what = f"build: {build}" if build else "a hub or local dataset (no build)"
                raise WorkflowError(
                    f"config dataset/{key}: {dataset[key]!r} is read by build: {builder} only, "
                    f"and this study has {what}; remove it (it would be ignored)")


def _check_prompt(config):
    """The study-wide prompt_template, checked as the settings check a point's prompt."""
    try:
        from nanovlm_lite.evaluate.prompts import check_template
    except ImportError:
        return
    try:
        check_template(config["prompt_template"])
    except ValueError as e:
        raise WorkflowError(f"config prompt_template: {e}") from None


def _check_train_overrides(config):
    """train_overrides, checked against the training options every recipe has."""
    try:
        from nanovlm_lite.train.recipes import check_overrides
    except ImportError:
        return
    try:
        check_overrides(config["train_overrides"])
    except ValueError as e:
        raise WorkflowError(f"config train_overrides: {e}") from None


def _check_duplicate_keys():
    """Every config file read (the --configfile ones, or config/config.yaml) again, with
    duplicate keys refused: YAML keeps the last of two and the first vanishes silently."""
    try:
        from nanovlm_lite.strict_yaml import DuplicateKeyError, load_strict
    except ImportError:
        return
    problems = []
    for path in dict.fromkeys(map(str, workflow.configfiles)):
        try:
            load_strict(path)
        except DuplicateKeyError as e:
            problems.append(str(e))
        except Exception:  # unreadable or not YAML: Snakemake has said so already
            continue
    if problems:
        raise WorkflowError("\n".join(problems))


def _check_study(config):
    """What the config alone decides, all at once: reference_point and every point's
    finetune recipe (nanovlm_lite/study_check.py)."""
    try:
        from nanovlm_lite.study_check import config_problems, report
    except ImportError:
        return
    problems = config_problems(config["points"], config["reference_point"],
                               config["train_overrides"])
    if problems:
        raise WorkflowError(report(problems, "config"))


def _check_search(config):
    """The `search:` section (nanovlm_lite/search/space.py): None when there is none."""
    if not config.get("search"):
        return None
    from nanovlm_lite.search.space import SearchConfigError, parse_search
    try:
        return parse_search(config["search"])
    except SearchConfigError as e:
        raise WorkflowError(str(e)) from None


_check_duplicate_keys()
_check_names(config)
_validate(config)
_check_settings(config["points"])
_check_train_overrides(config)
_check_study(config)
_check_paths(config)
_check_builder_options(config)
_check_prompt(config)
SEARCH = _check_search(config)

STUDY = config["study"]


# ---- per-rule memory and time ---------------------------------------------------------
# Not in profiles/slurm: they differ by study (the demo's tiny model vs nanoVLM-460M), so
# each study config measures its own (`resources:`); the profile names partitions and GPUs.
RULE_RESOURCES = {"mem_mb": 4000, "runtime": 60}


def rule_resources(rule):
    """mem_mb (MB) and runtime (minutes) for a rule's jobs: the study's `resources:` entry,
    else RULE_RESOURCES."""
    return {**RULE_RESOURCES, **config["resources"].get(rule, {})}

POINTS = config["points"]
UPSTREAM = config["upstream"]
DATASET = config["dataset"]


FOUND_POINT = r"found\.[A-Za-z0-9._-]+"  # a point the search found (rules/search.smk)


wildcard_constraints:
    study=re.escape(STUDY),
    point="|".join([*(re.escape(p) for p in POINTS), *([FOUND_POINT] if SEARCH else [])]),
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


# ---- the locked environment: an input of every rule that runs the model ----------------
# The lock the venv was installed from (`make venv`; `make LOCK=locks/gpu.txt study` exports
# NANOVLM_LOCK for the GPU lock). A changed lock reruns the model rules, and what follows
# from them, like a code edit does (docs/environment.md).
LOCK_FILE = os.path.relpath(
    os.path.join(workflow.basedir, os.environ.get("NANOVLM_LOCK") or "locks/cpu.txt"))


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


def _check_points_now():
    """Every point against the model's shapes, when the model is already there (a local
    checkpoint, or made by an earlier run): all bad points named now, so `snakemake -n`
    fails too. A model this run makes is checked by the check_points rule (check.smk)."""
    if not os.path.isfile(os.path.join(os.path.expanduser(BASE_MODEL), "config.json")):
        return
    try:
        from nanovlm_lite.study_check import StudyCheckError, check_model_dir
    except ImportError:
        return
    try:
        check_model_dir(os.path.expanduser(BASE_MODEL), POINTS)
    except StudyCheckError as e:
        raise WorkflowError(str(e)) from None
    except ValueError:  # an unreadable config.json: the jobs that load it say so
        return


_check_points_now()


def point_settings(wildcards):
    """The point's settings as written in the config, or as the search found them (a
    params value: editing them reruns that point's jobs, and only those)."""
    if wildcards.point not in POINTS:
        return dict(sorted(found_point_settings(wildcards.point).items()))
    return dict(sorted(POINTS[wildcards.point].items()))


def point_found_file(wildcards):
    """Input function: the search's found.yaml for a point it found (its settings come from
    there), nothing for a hand-listed point."""
    return [] if wildcards.point in POINTS else SEARCH_FOUND


def point_model(wildcards):
    """The checkpoint a point is evaluated with: its fine-tuned copy, else its pruned copy
    or the base model (`point_start_model`, rules/compress_keys.smk)."""
    if wildcards.point not in POINTS:  # found by the search: runs on the base model
        return BASE_MODEL
    if POINTS[wildcards.point].get("finetune"):
        return f"results/{wildcards.study}/points/{wildcards.point}/finetuned"
    return point_start_model(wildcards)


# ---- the dataset ----------------------------------------------------------------------
def _dataset_slug(repo):
    if os.path.isfile(repo) or repo.endswith(".parquet") or not HUB_ID.match(repo):
        stem = os.path.splitext(os.path.basename(repo))[0]
        return f"local--{stem}"
    return hub_slug(repo)


if DATASET.get("build"):
    DATA_DIR = f"data/{DATASET['build']}"
    EVAL_DATA = f"{DATA_DIR}/val.parquet"
    TRAIN_DATA = f"{DATA_DIR}/train.parquet"
else:
    DATA_DIR = f"data/{_dataset_slug(DATASET['repo'])}"
    EVAL_DATA = f"{DATA_DIR}/{DATASET['split']}.parquet"
    TRAIN_DATA = f"{DATA_DIR}/{DATASET['train_split']}.parquet"

# A study with a search holds questions out of the training split for it (search/split.py):
# every training rule reads the rest (`fit`), the search reads the held-out part.
TRAIN_SOURCE = TRAIN_DATA
if SEARCH:
    TRAIN_DATA = f"{DATA_DIR}/search-{SEARCH.seed}-{SEARCH.holdout_questions}/fit.parquet"
    SEARCH_DATA = f"{DATA_DIR}/search-{SEARCH.seed}-{SEARCH.holdout_questions}/search.parquet"


def dataset_source(split):
    """(repo or local parquet, expected rows) for a split of the configured dataset."""
    if split == DATASET["split"]:
        return DATASET["repo"], DATASET["expected_rows"]
    return DATASET["train_repo"] or DATASET["repo"], DATASET["train_expected_rows"]


PARITY_REPORT = f"results/{STUDY}/parity/report.json"
UPSTREAM_DIR = "resources/upstream/nanoVLM"


def all_points(filename):
    """Input function: `filename` of every hand-listed point (e.g. "metrics.json")."""

    def paths(wildcards):
        return expand(
            "results/{study}/points/{point}/{filename}",
            study=wildcards.study,
            point=POINTS,
            filename=filename,
        )

    return paths


def found_points_files(filename):
    """Input function: `filename` of every point the search found, known once its
    checkpoint has run (a separate input from all_points, so the hand-listed points'
    jobs need not wait for the search)."""

    def paths(wildcards):
        return expand(
            "results/{study}/points/{point}/{filename}",
            study=wildcards.study,
            point=found_points(),
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


# ---- the search (rules/search.smk) ----------------------------------------------------
SEARCH_FOUND = f"results/{STUDY}/search/found.yaml" if SEARCH else []


def found_point_settings(point):
    """A found point's settings, read from found.yaml itself: its jobs take the file as an
    input (point_found_file), and a job on a cluster node reads it there (asking the
    checkpoint from a job's params is refused remotely)."""
    from nanovlm_lite.search.space import read_found
    return read_found(SEARCH_FOUND)[point]


def found_points(wildcards=None):
    """{name: settings} the search found ({} without a search); known once the search
    checkpoint has run, which asking for it here makes Snakemake wait for."""
    if not SEARCH:
        return {}
    from nanovlm_lite.search.space import read_found
    return read_found(checkpoints.search.get(study=STUDY).output.found)
