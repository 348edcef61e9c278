"""The `search:` section of a study config: what to search, how much to spend, and the
candidates it spans.

A candidate is the section's `base` settings plus one value of every setting in `space`
(a list of values, or `{low, high, step}`). Only settings that change how the base model
runs are searchable: the found point is evaluated on the base checkpoint, so a setting
that makes a new checkpoint (finetune, prune_*) or replaces the input (blank_images) is
refused. Light module: no torch (the parse-time config check imports it).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import UserError
from ..fieldtypes import check_value, field_types
from ..settings import PRUNE_SETTINGS, PointSettings, SettingsError

NOT_SEARCHABLE = ("finetune", "blank_images", "seed", *PRUNE_SETTINGS)
KEYS = ("space", "base", "budget", "rungs", "seed", "holdout_questions", "workers",
        "max_candidates")
DEFAULT_MAX_CANDIDATES = 2000
FOUND_PREFIX = "found."


class SearchConfigError(UserError, ValueError):
    """The study's `search:` section cannot be used (the message names the key)."""


@dataclass(frozen=True)
class SearchConfig:
    space: dict[str, list]                # setting -> the values tried
    base: dict = field(default_factory=dict)
    budget: int = 10_000                  # question-evaluations, all candidates together
    rungs: tuple = (150, 450, "all")      # questions a candidate must answer to go on
    seed: int = 0                         # the held-out questions and their order
    holdout_questions: int = 1000         # held out of the training split for the search
    workers: int = 1                      # search jobs sharing one storage
    max_candidates: int = DEFAULT_MAX_CANDIDATES

    def rung_sizes(self, n_questions: int) -> list[int]:
        """The rungs as question counts on a search split of `n_questions` ("all" = every
        one; a rung past the split's size is the whole split), without repeats."""
        sizes = [n_questions if r == "all" else min(int(r), n_questions) for r in self.rungs]
        return list(dict.fromkeys(sizes))

    def fingerprint(self) -> str:
        """A hash of everything that decides the search's result (not `workers`)."""
        data = {k: getattr(self, k) for k in ("space", "base", "budget", "rungs", "seed",
                                                "holdout_questions", "max_candidates")}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:12]


def _bad(msg: str):
    """A SearchConfigError naming the key: `msg` starts with the path under search/
    ("rungs: ...") or with ": ..." for the section itself."""
    raise SearchConfigError(f"config search{msg}" if msg.startswith(":") else f"config search/{msg}")


def _range_values(key: str, spec: dict) -> list:
    unknown = sorted(set(spec) - {"low", "high", "step"})
    missing = [k for k in ("low", "high", "step") if k not in spec]
    if unknown or missing:
        _bad(f"space/{key}: a range is {{low, high, step}}"
             + (f"; unknown key(s) {unknown}" if unknown else "")
             + (f"; missing {missing}" if missing else ""))
    low, high, step = spec["low"], spec["high"], spec["step"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, step)):
        _bad(f"space/{key}: low, high and step must be numbers, got {spec}")
    if step <= 0 or high < low:
        _bad(f"space/{key}: needs step > 0 and high >= low, got {spec}")
    as_int = all(isinstance(v, int) for v in (low, high, step))
    lo, hi, st = (Decimal(str(v)) for v in (low, high, step))  # 0.1 steps without drift
    n = int((hi - lo) / st) + 1
    values = [lo + i * st for i in range(n)]
    return [int(v) if as_int else float(v) for v in values]


def _check_setting(key: str, where: str):
    if key in NOT_SEARCHABLE:
        _bad(f"{where}/{key}: not searchable: the found point runs on the base checkpoint, and "
             f"{key} makes another checkpoint or input; list such points by hand")


def parse_search(section: dict | None) -> SearchConfig | None:
    """The `search:` section checked: every problem is a SearchConfigError naming the key
    and what was expected. None when the study has no search."""
    if section is None:
        return None
    if not isinstance(section, dict):
        _bad(f": expected a mapping with keys {', '.join(KEYS)}, got {section!r}")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        _bad(f": unknown key(s) {unknown}; allowed: {', '.join(KEYS)}")
    space = section.get("space")
    if not isinstance(space, dict) or not space:
        _bad("space: a non-empty mapping of setting -> list of values or {low, high, step}")
    known = {f for f in PointSettings.__dataclass_fields__}
    values = {}
    for key, spec in space.items():
        if key not in known:
            _bad(f"space/{key}: unknown setting; expected some of {sorted(known)}")
        _check_setting(key, "space")
        if isinstance(spec, dict):
            values[key] = _range_values(key, spec)
        elif isinstance(spec, list) and spec:
            values[key] = list(spec)
        else:
            _bad(f"space/{key}: a non-empty list of values or {{low, high, step}}, got {spec!r}")
        for v in values[key]:  # each value by the setting's own type
            try:
                check_value(v, field_types(PointSettings)[key])
            except ValueError as e:
                _bad(f"space/{key}: value {v!r}: expected {e}")
    base = section.get("base") or {}
    if not isinstance(base, dict):
        _bad(f"base: a mapping of fixed settings, got {base!r}")
    for key in base:
        _check_setting(key, "base")
        if key in values:
            _bad(f"base/{key}: also in space; a setting is either fixed or searched")
    try:
        PointSettings.from_dict(dict(base), where="config search/base")
    except SettingsError as e:
        raise SearchConfigError(str(e)) from None
    ints = {}
    for key, default, low in (("budget", 10_000, 1), ("seed", 0, 0), ("holdout_questions", 1000, 1),
                              ("workers", 1, 1), ("max_candidates", DEFAULT_MAX_CANDIDATES, 1)):
        v = section.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            _bad(f"{key}: an integer >= {low}, got {v!r}")
        ints[key] = v
    rungs = section.get("rungs", [150, 450, "all"])
    if (not isinstance(rungs, list) or not rungs
            or not all(r == "all" or (isinstance(r, int) and not isinstance(r, bool) and r >= 1)
                       for r in rungs)):
        _bad(f"rungs: a list of question counts (integers >= 1, the last may be \"all\"), got "
             f"{rungs!r}")
    counts = [r for r in rungs if r != "all"]
    if "all" in rungs[:-1] or counts != sorted(set(counts)):
        _bad(f"rungs: must grow, each larger than the last, \"all\" only at the end; got {rungs}")
    config = SearchConfig(space=values, base=dict(base), budget=ints["budget"],
                          rungs=tuple(rungs), seed=ints["seed"],
                          holdout_questions=ints["holdout_questions"], workers=ints["workers"],
                          max_candidates=ints["max_candidates"])
    n = 1
    for v in values.values():
        n *= len(v)
    if n > config.max_candidates:
        _bad(f"space: spans {n} candidates, more than max_candidates {config.max_candidates}; "
             f"narrow the space or raise max_candidates")
    return config


def candidates(config: SearchConfig) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Every combination of the space over the base, as settings dicts, and those that are
    not valid settings with the reason ([(settings, why)]). Duplicates (the same settings
    reached twice) are kept once."""
    keys = sorted(config.space)
    valid, invalid, seen = [], [], set()
    for combo in itertools.product(*(config.space[k] for k in keys)):
        settings = {**config.base, **{k: v for k, v in zip(keys, combo) if v is not None}}
        try:
            normal = PointSettings.from_dict(settings).changed()
        except SettingsError as e:
            invalid.append((settings, str(e).split(": ", 1)[-1]))
            continue
        key = json.dumps(normal, sort_keys=True)
        if key not in seen:
            seen.add(key)
            valid.append(normal)
    return valid, invalid


def point_name(settings: dict) -> str:
    """A found point's name, made of its settings: found.global_only-true.tile_size-32."""
    def word(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "_".join(word(x) for x in v) or "none"
        return re.sub(r"[^A-Za-z0-9._]+", "_", str(v))
    parts = [f"{k}-{word(v)}" for k, v in sorted(settings.items())]
    return FOUND_PREFIX + (".".join(parts) or "defaults")


def settings_key(settings: dict) -> str:
    """A candidate's cache key: a hash of its settings (all of them, defaults included)."""
    full = PointSettings.from_dict(settings).to_dict()
    return hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]


def read_found(found_yaml) -> dict:
    """{point name: settings} of a search's found.yaml ({} when it found nothing). Here,
    not in result.py, so the aggregate job reads it without Optuna."""
    import yaml
    with open(found_yaml) as f:
        return dict((yaml.safe_load(f) or {}).get("points") or {})
