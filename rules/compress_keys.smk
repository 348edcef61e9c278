# Keys and input functions for rules/compress.smk (helpers only, no rules; kept apart from
# rules/common.smk so the compression rules' helpers sit in one place).
#
# Both are keyed by what makes them, so they are computed once and shared:
# - a teacher by its settings (the teacher point's, with the study's prompt_template),
#   the objective and top-k its students' recipe asks for: results/{study}/teachers/
#   {point}-{objective}-{hash}/. Changing a student never changes the key (its teacher is
#   not recomputed); changing the teacher's settings does (a new key, a new job, and every
#   student that reads it trains again).
# - an importance file by the calibration settings (a pruning point's settings less
#   prune_* and finetune) and the calibration sample count and seed:
#   results/{study}/importance/{hash}.safetensors, shared by the points that differ only
#   in how much they prune or how they recover.
# - a pruned checkpoint by its calibration key and its prune ratios:
#   results/{study}/pruned/{calibration}-{hash}/, shared by the points that prune alike and
#   differ only in how they recover (cut, fine-tuned, distilled).
import hashlib
import json

from nanovlm_lite.settings import PRUNE_SETTINGS, PointSettings


def _digest(params):
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def _as_evaluated(settings):
    """A point's settings with the study's prompt_template where it names no prompt, as
    the evaluate rule applies it."""
    settings = dict(sorted(settings.items()))
    if "prompt" not in settings:
        settings["prompt"] = config["prompt_template"]
    return settings


def _prunes(point):
    return PointSettings.from_dict(POINTS[point]).prunes


def _teachers():
    """({key: teacher params}, {student point: key}) for every point whose recipe distils."""
    from nanovlm_lite.train.recipes import distill_request
    teachers, by_point = {}, {}
    for point, settings in POINTS.items():
        recipe = settings.get("finetune")
        if not recipe:
            continue
        # recipe, teacher and reference were checked when the config was read
        # (rules/common.smk: nanovlm_lite/study_check.py names every mistake at once)
        request = distill_request(recipe, config["train_overrides"])
        if request is None:
            continue
        teacher = request["teacher"] or config["reference_point"]
        params = {"settings": _as_evaluated(POINTS[teacher]),
                  "objective": request["objective"], "top_k": request["top_k"]}
        key = f"{teacher}-{request['objective'].replace('+', '_')}-{_digest(params)}"
        teachers[key] = params
        by_point[point] = key
    return teachers, by_point


def _calibrations():
    """({key: calibration params}, {pruning point: key})."""
    found, by_point = {}, {}
    for point, settings in POINTS.items():
        if not _prunes(point):
            continue
        base = {k: v for k, v in _as_evaluated(settings).items()
                if k not in PRUNE_SETTINGS and k != "finetune"}
        params = {"settings": base, "samples": config["prune"]["calibration_samples"],
                  "seed": config["prune"]["calibration_seed"]}
        key = _digest(params)
        found[key] = params
        by_point[point] = key
    return found, by_point


def _pruned():
    """({key: {calibration, ratios}}, {pruning point: key})."""
    found, by_point = {}, {}
    for point, calibration in POINT_CALIBRATION.items():
        ratios = {k: POINTS[point].get(k, 1.0) for k in PRUNE_SETTINGS}
        key = f"{calibration}-{_digest(ratios)}"
        found[key] = {"calibration": calibration, "ratios": ratios}
        by_point[point] = key
    return found, by_point


TEACHERS, POINT_TEACHER = _teachers()
CALIBRATIONS, POINT_CALIBRATION = _calibrations()
PRUNED, POINT_PRUNED = _pruned()


def _one_of(keys):
    return "|".join(re.escape(k) for k in keys) or "(?!)"  # no keys: match nothing


def point_start_model(wildcards):
    """The checkpoint a point's recipe starts from: its pruned copy, or the base model."""
    if _prunes(wildcards.point):
        return f"results/{wildcards.study}/pruned/{POINT_PRUNED[wildcards.point]}"
    return BASE_MODEL


def point_teacher(wildcards):
    """The teacher's outputs a distilling point trains against (none otherwise)."""
    key = POINT_TEACHER.get(wildcards.point)
    if key is None:
        return []
    return [f"results/{wildcards.study}/teachers/{key}/outputs.safetensors",
            f"results/{wildcards.study}/teachers/{key}/teacher.json"]
