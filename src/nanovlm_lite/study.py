"""A study config's points: `points:` maps a name to its settings (PointSettings fields).

    points:
      default: {}
      global-512: {global_only: true}

The command line picks one with `--config FILE --point NAME` and adjusts it with
`--set KEY=VALUE`, the value read by the setting's type: `--set skip_lm_blocks=[3,4]`,
`--set pool=null`, `--set global_only=true` (only true or false), `--set tile_size=256`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .settings import PointSettings, SettingsError
from .strict_yaml import DuplicateKeyError, load_strict


def read_study(path) -> dict[str, Any]:
    """The study config as a dict (SettingsError if it is missing, not YAML, or holds a
    key twice in one mapping)."""
    path = Path(path)
    try:
        data = load_strict(path)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such study config") from None
    except DuplicateKeyError as e:   # YAML would keep the last and drop the first silently
        raise SettingsError(str(e)) from None
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping with a `points:` section")
    return data


def point_dicts(path) -> dict[str, dict[str, Any]]:
    """Each point's raw settings, in config order."""
    points = read_study(path).get("points")
    if not isinstance(points, dict) or not points:
        raise SettingsError(f"{path}: `points:` must map point names to their settings")
    out = {}
    for name, settings in points.items():
        if settings is not None and not isinstance(settings, dict):
            raise SettingsError(f"{path}: point {name!r}: settings must be a mapping, "
                                f"got {settings!r}")
        out[str(name)] = dict(settings or {})
    return out


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    """`["pool=avg", "keep_ratio=0.5"]` -> {"pool": "avg", "keep_ratio": 0.5}, each value
    read by its setting's declared type (PointSettings.parse_setting): `global_only=maybe`
    or `tile_size=64.0` is an error naming the key, the value and what it takes."""
    out = {}
    for item in sets or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SettingsError(f"--set {item!r}: expected KEY=VALUE")
        key = key.strip()
        out[key] = PointSettings.parse_setting(key, value, where=f"--set {item}")
    return out


def load_points(path, sets: list[str] | None = None) -> dict[str, PointSettings]:
    """Every point of a study config as validated settings (with `sets` applied to each)."""
    extra = parse_sets(sets)
    return {name: PointSettings.from_dict({**raw, **extra}, where=f"{path}: point {name!r}")
            for name, raw in point_dicts(path).items()}


def point_settings(config_path, point: str | None, sets: list[str] | None = None
                   ) -> PointSettings:
    """The settings that `--config FILE --point NAME --set KEY=VALUE ...` ask for; without
    a config, the defaults with `sets` applied."""
    extra = parse_sets(sets)
    if config_path is None:
        if point is not None:
            raise SettingsError(f"--point {point!r} needs --config FILE (the study it is in)")
        return PointSettings.from_dict(extra, where="--set")
    points = point_dicts(config_path)
    if point is None:
        raise SettingsError(f"--config {config_path} needs --point NAME; its points: "
                            f"{', '.join(points)}")
    if point not in points:
        raise SettingsError(f"{config_path}: no point {point!r}; its points: "
                            f"{', '.join(points)}")
    return PointSettings.from_dict({**points[point], **extra},
                                   where=f"{config_path}: point {point!r}")
