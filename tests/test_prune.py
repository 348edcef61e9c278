"""Width pruning: importance ranks the channels that fire, a pruned model is the unpruned
one with the dropped channels zeroed and stays upstream's format, the pipeline's pieces
(importance file, pruned checkpoint, its pruning.json) fit together, and bad ratios are
clear errors."""
import copy
import json
import shutil

import pytest
import torch
from safetensors import safe_open

import nanovlm_lite
from helpers import make_parquet
from nanovlm_lite.data.aokvqa import load_questions
from nanovlm_lite.engine import Engine
from nanovlm_lite.evaluate.run import evaluate_questions
from nanovlm_lite.flops_profile import count_question
from nanovlm_lite.model.checkpoint import expected_upstream_shapes, save_upstream_checkpoint
from nanovlm_lite.model.config import VLMConfig
from nanovlm_lite.model.widths import (PRUNING_RECORD, check_pruned, config_for_point,
                                       kept_channels, pruned_config)
from nanovlm_lite.prune.apply import _mlp_names, keep_channels, kept_indices, prune_checkpoint, \
    prune_model
from nanovlm_lite.prune.importance import (calibration_questions, channel_importance,
                                           compute_importance, read_importance)
from nanovlm_lite.settings import PointSettings, SettingsError
from nanovlm_lite.train import recipes

HALF = PointSettings(prune_vit_mlp=0.5, prune_lm_mlp=0.25)


@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return load_questions(make_parquet(tmp_path_factory.mktemp("d") / "train.parquet", n=4))


def random_importance(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {f"vit.{i}": torch.rand(cfg.vit_inter_dim, generator=g) for i in range(cfg.vit_n_blocks)}
    out.update({f"lm.{i}": torch.rand(cfg.lm_inter_dim, generator=g) for i in range(cfg.lm_n_blocks)})
    return out


def logits(engine, questions, settings=PointSettings()):
    prompts = [engine.prepare(q.image(), q.question, settings) for q in questions]
    return engine.next_token_logits(prompts, settings)


# ------------------------------------------------------------------------ ranking
def test_keep_channels_takes_the_most_important_in_order():
    scores = torch.tensor([0.1, 5.0, 0.3, 4.0, 4.0, 0.0])
    assert keep_channels(scores, 3).tolist() == [1, 3, 4]
    assert keep_channels(scores, 2).tolist() == [1, 3]        # a tie goes to the lower index
    assert keep_channels(scores, 6).tolist() == list(range(6))
    assert kept_channels(3072, 0.5) == 1536 and kept_channels(64, 0.001) == 1


def test_importance_finds_the_channels_that_fire(engine, questions):
    """A constructed case: one ViT channel and one LM channel made to fire hard, one ViT
    channel silenced; importance ranks them first and last, and pruning keeps accordingly."""
    model = copy.deepcopy(engine.model)
    vit0, vit1 = model.vit.encoder.layers[0].mlp, model.vit.encoder.layers[1].mlp
    lm1 = model.lm.model.layers[1].mlp
    with torch.no_grad():
        vit0.fc1.bias[7] = 30.0                      # GELU(~30) for every patch
        vit1.fc1.weight[3] = 0.0
        vit1.fc1.bias[3] = -30.0                     # GELU(-30) = 0: never fires
        lm1.up_proj.weight[5] *= 200.0
    boosted = Engine(model, engine.tokenizer, None)
    importance = channel_importance(boosted, questions, PointSettings(max_tiles=2), log=lambda *_: None)
    assert importance["vit.0"].shape == (engine.cfg.vit_inter_dim,)
    assert int(importance["vit.0"].argmax()) == 7
    assert int(importance["vit.1"].argmin()) == 3 and float(importance["vit.1"][3]) < 1e-6
    assert int(importance["lm.1"].argmax()) == 5
    keep = kept_indices(engine.cfg, importance, PointSettings(prune_vit_mlp=0.1, prune_lm_mlp=0.1))
    assert 7 in keep["vit.0"].tolist() and 3 not in keep["vit.1"].tolist()
    assert 5 in keep["lm.1"].tolist()
    assert all(len(v) == kept_channels(engine.cfg.vit_inter_dim, 0.1)
               for k, v in keep.items() if k.startswith("vit"))


def test_blocks_that_do_not_run_see_no_tokens(engine, questions):
    importance = channel_importance(engine, questions[:2], PointSettings(vit_blocks=1,
                                    skip_lm_blocks=(2,)), log=lambda *_: None)
    assert importance["vit.0"].sum() > 0 and importance["vit.1"].sum() == 0
    assert importance["lm.1"].sum() > 0 and importance["lm.2"].sum() == 0


def test_calibration_draws_a_seeded_sample_in_file_order():
    items = list(range(100))
    a = calibration_questions(items, 10, seed=0)
    assert a == calibration_questions(items, 10, seed=0) and a == sorted(a) and len(set(a)) == 10
    assert a != calibration_questions(items, 10, seed=1)
    assert calibration_questions(items, 500, seed=0) == items


# -------------------------------------------------------------- the pruned model
def test_a_pruned_model_is_the_unpruned_one_with_the_dropped_channels_zeroed(
        engine, questions, tmp_path, fixture_dir):
    importance = random_importance(engine.cfg)
    pruned = prune_model(engine.model, importance, HALF)
    assert (pruned.cfg.vit_inter_dim, pruned.cfg.lm_inter_dim) == (128, 40)   # of 256 and 160
    assert pruned.cfg == pruned_config(engine.cfg, HALF)
    zeroed = copy.deepcopy(engine.model)
    params = dict(zeroed.named_parameters())
    with torch.no_grad():
        for key, idx in kept_indices(engine.cfg, importance, HALF).items():
            side, i = key.split(".")
            _, (cols,) = _mlp_names(side, int(i))
            dropped = torch.ones(params[cols].shape[1], dtype=torch.bool)
            dropped[idx] = False
            params[cols][:, dropped] = 0.0
    ours = logits(Engine(pruned, engine.tokenizer, None), questions)
    assert torch.allclose(ours, logits(Engine(zeroed, engine.tokenizer, None), questions), atol=1e-5)
    assert not torch.allclose(ours, logits(engine, questions), atol=1e-3)   # pruning did something
    # upstream's format: its config fields only, the smaller widths, its tensor names and shapes
    out = save_upstream_checkpoint(pruned, tmp_path / "pruned")
    config = json.loads((out / "config.json").read_text())
    assert set(config) == set(VLMConfig().to_dict())
    assert (config["vit_inter_dim"], config["lm_inter_dim"]) == (128, 40)
    assert {k: v for k, v in config.items() if not k.endswith("_inter_dim")} == \
        {k: v for k, v in engine.cfg.to_dict().items() if not k.endswith("_inter_dim")}
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert shapes == expected_upstream_shapes(pruned.cfg)
    shutil.copytree(fixture_dir / "tokenizer", out / "tokenizer")
    assert torch.allclose(logits(nanovlm_lite.load(str(out)), questions), ours, atol=1e-6)


def test_importance_made_for_another_model_is_refused(engine):
    importance = random_importance(engine.cfg)
    importance["lm.1"] = torch.rand(99)
    with pytest.raises(ValueError, match="99 channels for lm block 1, the model has 160"):
        kept_indices(engine.cfg, importance, HALF)


# ------------------------------------------------------------------ the pipeline's pieces
def test_importance_file_then_pruned_checkpoint(fixture_dir, tmp_path, questions):
    data = make_parquet(tmp_path / "train.parquet", n=6)
    settings = {"max_tiles": 2}
    path = compute_importance(str(fixture_dir), data, settings, tmp_path / "imp.safetensors",
                              samples=4, seed=0, device="cpu")
    importance, meta = read_importance(path)
    assert meta["samples"] == 4 and meta["changed_settings"] == settings
    assert set(importance) == {"vit.0", "vit.1", "lm.0", "lm.1", "lm.2"}
    with pytest.raises(ValueError, match="calibration runs the base model"):
        compute_importance(str(fixture_dir), data, {"prune_lm_mlp": 0.5}, tmp_path / "x", 2)
    ratios = {"prune_vit_mlp": 0.5, "prune_lm_mlp": 0.25}
    out = prune_checkpoint(str(fixture_dir), path, ratios, tmp_path / "pruned")
    record = json.loads((out / PRUNING_RECORD).read_text())
    assert record["ratios"] == ratios and record["widths"] == {"vit_inter_dim": [256, 128],
                                                               "lm_inter_dim": [160, 40]}
    assert record["parameters"][1] < record["parameters"][0]
    assert (out / "tokenizer" / "tokenizer.json").exists()   # carried from the base
    pruned = nanovlm_lite.load(str(out))
    assert pruned.cfg.lm_inter_dim == 40
    point = PointSettings.from_dict({**settings, **ratios})

    # a pruning point runs on its pruned checkpoint, and only there
    records = evaluate_questions(pruned, questions[:2], point, progress=False)
    assert len(records) == 2 and not any(r.get("error") for r in records)
    base = nanovlm_lite.load(str(fixture_dir))
    with pytest.raises(SettingsError, match="is not a pruned checkpoint"):
        evaluate_questions(base, questions[:2], point, progress=False)
    with pytest.raises(SettingsError, match="was pruned with"):
        evaluate_questions(pruned, questions[:2], PointSettings(**settings), progress=False)

    # FLOPs: the pruned checkpoint's own widths; the base priced as the point will prune it
    assert config_for_point(pruned.cfg, point, out) == pruned.cfg
    assert config_for_point(base.cfg, point, fixture_dir) == pruned.cfg
    assert config_for_point(base.cfg, PointSettings(), fixture_dir) == base.cfg
    on_pruned = count_question(config_for_point(pruned.cfg, point, out), point, 100, 80,
                               text_tokens=10, measure_it=True)
    on_base = count_question(base.cfg, point, 100, 80, text_tokens=10)
    assert on_pruned["total"] == on_pruned["measured_total"] < on_base["total"]

    # a recipe fine-tunes the pruned checkpoint and keeps its pruning record
    val = make_parquet(tmp_path / "validation.parquet", n=2)
    tuned = recipes.finetune(str(out), data, "aokvqa-mcq", {**settings, **ratios},
                             tmp_path / "tuned", device="cpu", progress=False, val_data=val,
                             overrides={"steps": 1, "images_per_batch": 2, "accumulate": 1,
                                        "eval_questions": 2})
    assert json.loads((tuned / PRUNING_RECORD).read_text())["ratios"] == ratios
    check_pruned(point, tuned)
    with pytest.raises(SettingsError, match="is not a pruned checkpoint"):
        recipes.finetune(str(fixture_dir), data, "aokvqa-mcq", {**settings, **ratios},
                         tmp_path / "tuned-base", device="cpu", progress=False, val_data=val,
                         overrides={"steps": 1})


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("settings, message", [
    ({"prune_vit_mlp": 0}, r"prune_vit_mlp must be in \(0, 1\]"),
    ({"prune_lm_mlp": 1.5}, r"prune_lm_mlp must be in \(0, 1\]"),
    ({"prune_lm_mlp": -0.25}, r"prune_lm_mlp must be in \(0, 1\]"),
    ({"prune_vit_mlp": "half"}, "prune_vit_mlp must be a number"),
    ({"prune_vit_mlp": True}, "prune_vit_mlp must be a number"),
])
def test_invalid_ratios_are_clear_errors(settings, message):
    with pytest.raises(SettingsError, match=message):
        PointSettings.from_dict(settings, where="point 'p'")


def test_ratios_say_whether_a_point_prunes():
    assert not PointSettings().prunes and PointSettings(prune_lm_mlp=0.9).prunes
    assert PointSettings.from_dict({"prune_vit_mlp": 1}).prune_vit_mlp == 1.0


def test_the_flops_command_prices_a_pruning_point_at_its_widths(capsys):
    """`nanovlm-lite flops --model BASE` for a point that prunes: the base's widths pruned
    by its ratios, measured on them too."""
    from nanovlm_lite.cli import main
    from nanovlm_lite.flops import price
    from nanovlm_lite.model.config import load_config, preset_path
    from nanovlm_lite.plan import plan_for_size
    rows = []
    for sets in ([], ["--set", "prune_vit_mlp=0.5", "--set", "prune_lm_mlp=0.5"]):
        assert main(["flops", "--model", "nanovlm-460m", "--image-size", "640x480",
                     "--text-tokens", "40", "--measure", "--json", *sets]) == 0
        rows.append(json.loads(capsys.readouterr().out))
    full, pruned = rows
    point = PointSettings(prune_vit_mlp=0.5, prune_lm_mlp=0.5)
    cfg = pruned_config(load_config(preset_path("nanovlm-460m")), point)
    assert (cfg.vit_inter_dim, cfg.lm_inter_dim) == (1536, 1280)
    assert pruned["total"] == price(cfg, plan_for_size(cfg, point, 640, 480, 40))["total"]
    assert pruned["total"] == pruned["measured_total"] < full["total"]
    assert pruned["projector"] == full["projector"]   # only the MLPs narrow


def test_pruned_points_are_not_the_default_reference():
    import pandas as pd

    from nanovlm_lite.report.front import choose_reference, is_plain
    df = pd.DataFrame({"point": ["base", "pruned", "tuned"],
                       "accuracy": [0.7, 0.6, 0.8], "tflops_per_question": [1.0, 2.0, 3.0],
                       "prune_lm_mlp": [None, 0.5, None], "finetune": [None, None, "x"]})
    assert is_plain(df).tolist() == [True, False, False]
    assert choose_reference(df) == "base"
