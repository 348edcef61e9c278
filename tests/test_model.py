"""Checkpoint loading: presets, name mapping both ways, hub loading offline, clear errors."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import nanovlm_lite
from nanovlm_lite.hub import HubUnreachableError
from nanovlm_lite.model.checkpoint import (CheckpointError, expected_upstream_shapes,
                                           ours_to_upstream, save_upstream_checkpoint)
from nanovlm_lite.model.config import ConfigError, VLMConfig, load_config
from nanovlm_lite.model.load import load_model


def test_preset_builds_on_meta_with_the_released_parameter_count():
    model, model_dir = load_model("nanovlm-460m")
    assert model_dir is None
    assert sum(p.numel() for p in model.parameters()) == 460_113_984
    assert all(p.is_meta for p in model.parameters())
    assert model.cfg == VLMConfig()  # the preset is upstream's defaults


def test_preset_is_upstream_vlmconfig_defaults_as_written_by_upstream():
    """tests/fixtures/nanovlm-460m-config.json is upstream's `asdict(VLMConfig())` at the
    pinned commit, written the way its save_pretrained writes a config."""
    from conftest import FIXTURES
    from nanovlm_lite.model.config import preset_path
    upstream = json.loads((FIXTURES / "nanovlm-460m-config.json").read_text())
    assert json.loads(preset_path("nanovlm-460m").read_text()) == upstream


def test_fixture_round_trips_through_upstream_names(fixture_dir, tmp_path):
    model, _ = load_model(str(fixture_dir))
    original = load_file(fixture_dir / "model.safetensors")
    mapped = ours_to_upstream(model.state_dict(), model.cfg)
    assert set(mapped) == set(original) == set(expected_upstream_shapes(model.cfg))
    for name, tensor in original.items():
        assert torch.equal(mapped[name], tensor), name
    save_upstream_checkpoint(model, tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / "config.json").read_text()) == \
        json.loads((fixture_dir / "config.json").read_text())
    from safetensors import safe_open
    with safe_open(str(tmp_path / "copy" / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"decoder.token_embedding.weight": "decoder.head.weight"}


def _copy_fixture(fixture_dir, tmp_path):
    dest = tmp_path / "ckpt"
    shutil.copytree(fixture_dir, dest)
    for path in dest.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return dest


def test_mismatched_tensors_are_named(fixture_dir, tmp_path):
    ckpt = _copy_fixture(fixture_dir, tmp_path)
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["decoder.blocks.1.mlp.up_proj.weight"]
    tensors["decoder.blocks.9.extra.weight"] = torch.zeros(2)
    tensors["MP.proj.weight"] = torch.zeros(96, 128)
    save_file(tensors, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        nanovlm_lite.load(str(ckpt))
    msg = str(err.value)
    assert "decoder.blocks.1.mlp.up_proj.weight" in msg
    assert "decoder.blocks.9.extra.weight" in msg
    assert "MP.proj.weight: (96, 128) (config says (96, 256))" in msg
    assert "model.safetensors" in msg


def test_unknown_config_key_is_refused(fixture_dir, tmp_path):
    ckpt = _copy_fixture(fixture_dir, tmp_path)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["vit_img_sz"] = 64
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="vit_img_sz"):
        load_config(ckpt / "config.json")


def test_load_by_hub_id_from_a_local_cache(fixture_dir, tmp_path, monkeypatch):
    rev = "a" * 40
    snap = tmp_path / "hub" / "models--someorg--tiny-vlm" / "snapshots" / rev
    shutil.copytree(fixture_dir, snap, ignore=shutil.ignore_patterns("expected", "images"))
    (tmp_path / "hub" / "models--someorg--tiny-vlm" / "refs").mkdir()
    (tmp_path / "hub" / "models--someorg--tiny-vlm" / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    by_id = nanovlm_lite.load("someorg/tiny-vlm")
    by_dir = nanovlm_lite.load(str(fixture_dir))
    for a, b in zip(by_id.model.state_dict().values(), by_dir.model.state_dict().values()):
        assert torch.equal(a, b)
    # downloading into a folder copies the checkpoint and its tokenizer
    from nanovlm_lite.model.checkpoint import download_model
    dest = download_model("someorg/tiny-vlm", tmp_path / "models" / "tiny", revision=rev)
    assert (dest / "model.safetensors").exists() and (dest / "tokenizer" / "tokenizer.json").exists()


def test_unreachable_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError, match="someorg/missing.*make demo"):
        nanovlm_lite.load("someorg/missing")


def test_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        nanovlm_lite.load(str(tmp_path))


def _hub_model_with_tokenizer_repo(fixture_dir, cache):
    """The fixture as a hub model naming a hub tokenizer repo that also holds files that are
    not the tokenizer's (weights, a README): blobs + snapshot symlinks, as the hub caches."""
    from standins.hub import add_repo
    config = json.loads((fixture_dir / "config.json").read_text())
    config["lm_tokenizer"] = "someorg/tiny-tok"
    add_repo(cache, "someorg/tiny-vlm", {"config.json": json.dumps(config).encode(),
                                         "model.safetensors": fixture_dir / "model.safetensors",
                                         "README.md": b"# not needed"})
    tok = fixture_dir / "tokenizer"
    add_repo(cache, "someorg/tiny-tok", {"tokenizer.json": tok / "tokenizer.json",
                                         "tokenizer_config.json": tok / "tokenizer_config.json",
                                         "model.safetensors": b"an LM's weights", "README.md": b"#"})


def test_download_links_the_weights_and_copies_only_tokenizer_files(fixture_dir, tmp_path,
                                                                   monkeypatch):
    cache = tmp_path / "hub"
    _hub_model_with_tokenizer_repo(fixture_dir, cache)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from nanovlm_lite.model.checkpoint import download_model
    dest = download_model("someorg/tiny-vlm", tmp_path / "models" / "tiny")
    assert sorted(p.name for p in (dest / "tokenizer").iterdir()) == [
        "tokenizer.json", "tokenizer_config.json"]
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
    blob = (cache / "models--someorg--tiny-vlm" / "snapshots").glob("*/model.safetensors")
    blob = next(blob).resolve()
    weights = dest / "model.safetensors"
    assert weights.resolve() == blob or weights.stat().st_ino == blob.stat().st_ino  # not a copy
    assert nanovlm_lite.load(str(dest)).cfg.lm_vocab_size == load_config(
        fixture_dir / "config.json").lm_vocab_size


def test_uncached_model_with_the_hub_unreachable_fails_at_once(tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE, no network: one connect, then a clear error (no retries)."""
    import time

    import nanovlm_lite.hub as hub
    from nanovlm_lite.model.checkpoint import download_model
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    t0 = time.time()
    with pytest.raises(HubUnreachableError, match="someorg/missing.*cannot connect"):
        download_model("someorg/missing", tmp_path / "m")
    assert time.time() - t0 < 5 and not (tmp_path / "m").exists()
