"""A study checked whole before any work: every mistake of every point named in one message.

Two stages, each collecting all problems before it raises (StudyCheckError):
- `config_problems`: what the config alone decides, asked when the workflow is parsed
  (rules/common.smk, so `snakemake -n` fails too): `reference_point` names a plain point
  of the study (report/front.py `is_plain`: not fine-tuned, not pruned, not a blank-image
  baseline), and each `finetune:` names a known recipe whose needs the point meets
  (the settings the recipe trains at are the point's own, since the point is evaluated at
  its own settings; a `learned-pool` recipe needs `pool: learned`; a from-scratch recipe
  does not start from a pruned checkpoint; a distilling recipe has a plain teacher point).
- `model_problems`: what needs the model's shapes, from its config.json alone (no
  weights): each point's settings against the config it will run on
  (`PointSettings.problems_against`, the very check every job makes when it loads the
  model): the base model's, the widths its prune ratios make, or a from-scratch recipe's
  own architecture. The pipeline's check_points rule runs it once the model exists and
  before any job that uses a point; `nanovlm-lite flops --config FILE --all-points` runs
  both stages offline against a preset.
"""
from __future__ import annotations

import json
from pathlib import Path

from .settings import PRUNE_SETTINGS, PointSettings, SettingsError


class StudyCheckError(SettingsError):
    """Some points of a study cannot run; the message names every one and why."""


def report(problems: list[str], what: str) -> str:
    """One message for all problems: the problem itself when there is one, else a header
    and one line each."""
    if len(problems) == 1:
        return problems[0]
    return f"{what}: {len(problems)} problems\n" + "\n".join(f"  - {p}" for p in problems)


def _yaml(value) -> str:
    """A value as the config writes it (true, null, 0.5, learned)."""
    return {True: "true", False: "false", None: "null"}.get(value, str(value)) \
        if isinstance(value, (bool, type(None))) else str(value)


def _prunes(raw: dict) -> bool:
    return any(raw.get(name, 1.0) < 1.0 for name in PRUNE_SETTINGS)


def is_plain(raw: dict) -> bool:
    """The model as it is: no finetune, no prune_* ratio below 1, not on blank images (the
    same test as report/front.py `is_plain`, on the config's settings)."""
    return not raw.get("finetune") and not _prunes(raw) and not raw.get("blank_images")


def _not_plain(raw: dict) -> str:
    return ", ".join(f"{k}: {_yaml(raw[k])}" for k in ("finetune", "blank_images", *PRUNE_SETTINGS)
                     if k in raw and (k != "blank_images" or raw[k])
                     and not (k in PRUNE_SETTINGS and raw[k] >= 1.0))


def reference_problems(points: dict[str, dict], reference: str | None) -> list[str]:
    """`reference_point` (None: the most expensive plain point, chosen once FLOPs are
    counted) must be a plain point of the study."""
    if reference is None:
        return []
    if reference not in points:
        return [f"config: reference_point {reference!r} is not a point of this study "
                f"(points: {', '.join(points)})"]
    if not is_plain(points[reference]):
        return [f"config: reference_point {reference!r} is not the model as it is "
                f"({_not_plain(points[reference])}); every point is compared with it and a "
                f"distilling recipe learns from it, so name a plain point (no finetune, no "
                f"prune_*, no blank_images)"]
    return []


def recipe_problems(name: str, raw: dict, points: dict[str, dict], reference: str | None,
                    overrides: dict | None = None) -> list[str]:
    """What is wrong with point `name`'s `finetune:` recipe (train/recipes.py) given the
    point's settings and the study's `train_overrides`; empty when nothing is."""
    from .train.recipes import distill_request, get_recipe, training_config
    recipe = raw.get("finetune")
    if not recipe:
        return []
    where = f"config: point {name!r}"
    try:
        spec = get_recipe(recipe)
        config = training_config(spec, overrides)
        request = distill_request(recipe, overrides)
    except ValueError as e:
        return [f"{where}: finetune: {e}"]
    out = []
    point = PointSettings.from_dict(raw, where=where)
    for key, value in spec.settings.items():
        if getattr(point, key) != value:
            stated = (f"has {key}: {_yaml(raw[key])}" if key in raw
                      else f"leaves {key} at its default")
            out.append(f"{where}: recipe {recipe!r} trains at {key}: {_yaml(value)}, and the "
                       f"point {stated}; the point is evaluated at its own settings, so set "
                       f"{key}: {_yaml(value)} there (or choose another recipe)")
    if config.trainable == "learned-pool" and point.pool != "learned" and \
            spec.settings.get("pool") != "learned":
        out.append(f"{where}: recipe {recipe!r} trains only the learned pooling module "
                   f"(trainable: learned-pool), and the point has no pool: learned")
    if spec.from_scratch and point.prunes:
        out.append(f"{where}: recipe {recipe!r} trains a new model from scratch, so the pruned "
                   f"checkpoint would be thrown away; name a fine-tuning recipe, or drop the "
                   f"prune_* settings")
    if request is not None:
        teacher = request["teacher"] or reference
        if teacher is None:
            out.append(f"{where}: recipe {recipe!r} distils from the study's reference point, "
                       f"and reference_point is null; the default reference (the most "
                       f"expensive plain point) is known only once FLOPs are counted, so name "
                       f"the teacher: set reference_point")
        elif teacher not in points:
            if teacher != reference:  # a missing reference_point is named once, above
                out.append(f"{where}: teacher point {teacher!r} is not a point of this study")
        elif points[teacher].get("finetune") or _prunes(points[teacher]):
            out.append(f"{where}: the teacher point {teacher!r} must be the base model as it "
                       f"is (no finetune, no prune_*)")
    return out


def config_problems(points: dict[str, dict], reference: str | None = None,
                    overrides: dict | None = None) -> list[str]:
    """Every problem the config alone shows (points already valid one by one)."""
    out = reference_problems(points, reference)
    for name, raw in points.items():
        out += recipe_problems(name, dict(raw or {}), points, reference, overrides)
    return out


# ---------------------------------------------------------------- against the model
def point_config(cfg, settings: PointSettings, model_dir=None):
    """The config a point runs on: a from-scratch recipe's own architecture (the point
    trains its own model), else the base's pruned by the point's ratios, or the base's
    own when it is a pruned checkpoint with these very ratios (model/widths.py)."""
    from .model.widths import config_for_point
    if settings.finetune:
        from .train.recipes import RECIPES
        spec = RECIPES.get(settings.finetune)
        if spec is not None and spec.from_scratch:
            from .train.demo import demo_config
            return demo_config(cfg.lm_base_vocab_size, **spec.architecture)
    return config_for_point(cfg, settings, model_dir)


def _learned_pool_problem(settings: PointSettings, model_dir) -> str | None:
    """pool: learned without a recipe that trains it needs the module beside the model."""
    if settings.pool != "learned" or settings.finetune or model_dir is None:
        return None
    from .sidecar import SIDECAR_NAME
    path = Path(model_dir) / SIDECAR_NAME
    modules = []
    if path.is_file():
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            modules = ((f.metadata() or {}).get("modules") or "").split(",")
    if "learned_pool" not in modules:
        return (f"pool: learned needs a trained learned-pool module, and {model_dir} has none "
                f"(no learned_pool in {SIDECAR_NAME}) and the point names no finetune recipe "
                f"to train one (e.g. demo-learned-pool)")
    return None


def problems_by_point(cfg, points: dict[str, PointSettings], model_dir=None
                      ) -> dict[str, list[str]]:
    """{point: its problems} against the model's config `cfg` (its checkpoint directory
    `model_dir`, or None for a preset), for the points that have any."""
    out = {}
    for name, settings in points.items():
        try:
            found = settings.problems_against(point_config(cfg, settings, model_dir))
        except (SettingsError, ValueError) as e:  # a pruned base the point does not match
            found = [str(e)]
        pool = _learned_pool_problem(settings, model_dir)
        found += [pool] if pool else []
        if found:
            out[name] = found
    return out


def _named(bad: dict[str, list[str]]) -> list[str]:
    """`problems_by_point`'s answer as lines, each named by its point."""
    return [f"point {name!r}: {p}" for name, found in bad.items() for p in found]


def model_problems(cfg, points: dict[str, PointSettings], model_dir=None) -> list[str]:
    """Every point's problems against the model, one line each, named by point."""
    return _named(problems_by_point(cfg, points, model_dir))


def describe_model(cfg, source) -> str:
    return (f"{source}: {cfg.vit_img_size}px tiles, patch {cfg.vit_patch_size}, pixel shuffle "
            f"{cfg.mp_pixel_shuffle_factor}, {cfg.vit_n_blocks} ViT blocks, {cfg.lm_n_blocks} "
            f"LM blocks")


def check_points(cfg, points: dict[str, PointSettings], model_dir=None,
                 source: str = "the model") -> None:
    """StudyCheckError naming every point that does not fit the model, and why."""
    bad = problems_by_point(cfg, points, model_dir)
    if not bad:
        return
    raise StudyCheckError(
        f"{len(bad)} of {len(points)} points cannot run on {describe_model(cfg, source)}; fix "
        f"or remove them (nothing else was started):\n"
        + "\n".join(f"  - {p}" for p in _named(bad)))


def check_model_dir(model_dir, raw_points: dict[str, dict], out_json=None) -> dict:
    """The pipeline's check: every point against the checkpoint's config.json (no weights
    read); writes what was checked to `out_json`."""
    from .model.config import load_config
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    cfg = load_config(config_path)
    points = {name: PointSettings.from_dict(raw, where=f"config: point {name!r}")
              for name, raw in raw_points.items()}
    check_points(cfg, points, model_dir, source=str(config_path))
    record = {"model_config": str(config_path),
              "geometry": {k: getattr(cfg, k) for k in (
                  "vit_img_size", "vit_patch_size", "mp_pixel_shuffle_factor", "vit_n_blocks",
                  "lm_n_blocks", "vit_inter_dim", "lm_inter_dim")},
              "points": {name: {"settings": s.changed(), "ok": True}
                         for name, s in points.items()}}
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(record, indent=1))
    return record


def check_study_file(path, cfg, model_dir=None, sets: list[str] | None = None,
                     source: str = "the model") -> dict[str, PointSettings]:
    """A study config checked whole against a model's config, offline (`nanovlm-lite flops
    --config FILE --all-points`): every point's settings (with `sets` applied), its recipe,
    the file's reference_point and every point against `cfg`. Returns the points' settings,
    or raises one StudyCheckError naming every problem (a duplicate key: SettingsError)."""
    from .study import parse_sets, point_dicts, read_study
    study = read_study(path)   # duplicate keys refused here
    raw = point_dicts(path)
    extra = parse_sets(sets)
    points, problems = {}, []
    for name, settings in raw.items():
        try:
            points[name] = PointSettings.from_dict({**settings, **extra},
                                                   where=f"{path}: point {name!r}")
        except SettingsError as e:
            problems.append(str(e))
    problems += reference_problems(raw, study.get("reference_point"))
    for name in points:
        problems += recipe_problems(name, {**raw[name], **extra}, raw,
                                    study.get("reference_point"), study.get("train_overrides"))
    problems += model_problems(cfg, points, model_dir)
    if problems:
        raise StudyCheckError(
            f"{path}: {len(problems)} problem(s) in this study checked against "
            f"{describe_model(cfg, source)}; no point was counted:\n"
            + "\n".join(f"  - {p}" for p in problems))
    return points
