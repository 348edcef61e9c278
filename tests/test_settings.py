"""Point settings: unknown keys and impossible combinations are refused up front, by name."""
import pytest

from nanovlm_lite.model.config import VLMConfig
from nanovlm_lite.settings import PointSettings, SettingsError


def test_unknown_setting_is_named():
    with pytest.raises(SettingsError, match=r"point 'x': unknown setting\(s\) \['tile_sz'\]"):
        PointSettings.from_dict({"tile_sz": 256}, where="point 'x'")


@pytest.mark.parametrize("settings, message", [
    ({"scoring": "vote"}, "scoring must be one of"),
    ({"keep_ratio": 0.5}, "needs select"),
    ({"select": "norm", "pool": "avg"}, "use one of them"),
    ({"fastv_ratio": 0.5}, "needs fastv_layer"),
    ({"fastv_layer": 3, "fastv_ratio": 0.5, "skip_lm_blocks": [3]}, "is in skip_lm_blocks"),
    ({"global_only": True, "max_tiles": 2}, "max_tiles would be ignored"),
    ({"pool": "avg", "pool_factor": 1}, "pool_factor must be >= 2"),
])
def test_impossible_settings_are_refused(settings, message):
    with pytest.raises(SettingsError, match=message):
        PointSettings.from_dict(settings)


@pytest.mark.parametrize("settings, message", [
    ({"tile_size": 480}, "multiple of patch size x pixel-shuffle factor = 64"),
    ({"tile_size": 192, "pool": "avg", "pool_factor": 2}, "must divide the 3x3 token grid"),
    ({"vit_blocks": 13}, "> the model's 12 ViT blocks"),
    ({"skip_lm_blocks": [32]}, "blocks 0..31"),
    ({"fastv_layer": 31, "fastv_ratio": 0.5}, "last LM block that runs"),
    ({"skip_lm_blocks": list(range(32))}, "skips every LM block"),
])
def test_settings_checked_against_the_model(settings, message):
    with pytest.raises(SettingsError, match=message):
        PointSettings.from_dict(settings).check_against(VLMConfig())


def test_round_trip_and_changed():
    s = PointSettings.from_dict({"global_only": True, "skip_lm_blocks": [4, 5]})
    assert PointSettings.from_dict(s.to_dict()) == s
    assert s.changed() == {"global_only": True, "skip_lm_blocks": [4, 5]}


# ---- strict types, derived from the field annotations (new settings are covered too) -----
from nanovlm_lite.fieldtypes import field_types  # noqa: E402

WRONG = {  # values each annotation must refuse, from YAML or JSON
    "int": [64.0, True, "64", [64]],
    "float": [True, "0.5", [0.5], float("nan")],
    "bool": [1, 0, "yes", "maybe", None],
    "str": [1, True, ["a"]],
    "tuple[int, ...]": [1, "1", [1.0], [True], 1.5],
}


def _base(annotation) -> str:
    return annotation.replace(" | None", "")


@pytest.mark.parametrize("name", sorted(field_types(PointSettings)))
def test_every_setting_refuses_values_of_the_wrong_type(name):
    annotation = PointSettings.__dataclass_fields__[name].type
    optional = annotation.endswith("| None")
    wrong = [v for v in WRONG[_base(annotation)] if not (v is None and optional)]
    assert wrong
    for value in wrong:
        with pytest.raises(SettingsError, match=rf"point 'p': {name} must be .*got "):
            PointSettings.from_dict({name: value}, where="point 'p'")
    if optional:  # null is the "not set" value of an optional setting
        assert getattr(PointSettings.from_dict({name: None}), name) is None


def test_a_float_written_as_yaml_reads_it_is_refused_with_the_fix_optional_or_not():
    """PyYAML reads 1e-3 (no dot) as text; an optional float field says so too (the union's
    generic "a number or null" alone would hide why a number was refused)."""
    from nanovlm_lite.fieldtypes import check_value
    for tp, words in ((float, "a number"), (float | None, "a number or null"),
                      (int | float, "an integer or a number")):
        with pytest.raises(ValueError) as caught:
            check_value("1e-3", tp)
        assert str(caught.value) == f"{words} (YAML reads 1e-3 as text: write 0.001)"
    with pytest.raises(ValueError) as caught:  # text that is no number: no hint
        check_value("fast", float | None)
    assert str(caught.value) == "a number or null"
    assert check_value(None, float | None) is None and check_value(2, float | None) == 2.0


def test_a_float_setting_takes_an_int_and_a_list_setting_a_list():
    s = PointSettings.from_dict({"keep_ratio": 1, "fastv_ratio": 0, "skip_lm_blocks": [1, 2]})
    assert s.keep_ratio == 1.0 and isinstance(s.keep_ratio, float) and s.skip_lm_blocks == (1, 2)
    assert PointSettings.from_dict({"skip_lm_blocks": None}).skip_lm_blocks == ()


@pytest.mark.parametrize("name", sorted(field_types(PointSettings)))
def test_every_setting_parses_from_the_command_line_by_its_type(name):
    annotation = _base(PointSettings.__dataclass_fields__[name].type)
    good, bad = {"int": ("3", "3.0"), "float": ("0.5", "half"), "bool": ("true", "1"),
                 "str": ("avg", None), "tuple[int, ...]": ("[3, 4]", "3")}[annotation]
    parsed = PointSettings.parse_setting(name, good)
    assert parsed == {"int": 3, "float": 0.5, "bool": True, "str": "avg",
                      "tuple[int, ...]": (3, 4)}[annotation]
    if bad is not None:
        with pytest.raises(SettingsError, match=rf"--set: {name} takes .*, got {bad!r}"):
            PointSettings.parse_setting(name, bad)


@pytest.mark.parametrize("settings, message", [
    ({"tile_size": 0}, "tile_size must be >= 1"),
    ({"tile_size": -64}, "tile_size must be >= 1"),
    ({"skip_lm_blocks": [2, 2]}, r"skip_lm_blocks lists block\(s\) \[2\] more than once"),
    ({"skip_lm_blocks": [-1]}, r"holds LM block indices \(>= 0\)"),
    ({"fastv_layer": -1}, "fastv_layer must be >= 0"),
    ({"pool_factor": 0}, "pool_factor must be >= 1"),
    ({"prompt": "defualt"}, "did you mean 'default'"),
    ({"prompt": "{question} {answer}"}, "unknown field 'answer'"),
])
def test_values_out_of_range_are_refused(settings, message):
    with pytest.raises(SettingsError, match=message):
        PointSettings.from_dict(settings)
