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
