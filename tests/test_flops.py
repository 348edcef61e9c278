"""FLOP accounting: the analytic model against the issue's numbers, DESIGN.md's formulas and
FlopCounterMode through the engine's forward path, for every point setting."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import nanovlm_lite
from nanovlm_lite import flops
from nanovlm_lite.cli import main as cli_main
from nanovlm_lite.flops import COMPONENTS, price, question_flops
from nanovlm_lite.flops_measure import measure, meta_engine, synthetic_prompt
from nanovlm_lite.flops_profile import count_question, profile_point
from nanovlm_lite.model.config import load_config, preset_path
from nanovlm_lite.plan import (fastv_dropped, plan_for_prompt, plan_for_record, plan_for_size,
                               template_tokens)
from nanovlm_lite.settings import PointSettings, SettingsError
from nanovlm_lite.study import load_points, parse_sets, point_settings

REPO = Path(__file__).resolve().parents[1]
TOL = 0.005   # the issue's bound on |analytic - measured| / measured
CHOICES = (2, 1, 3, 2)   # cloze choice token counts used throughout


@pytest.fixture(scope="module")
def cfg460():
    return load_config(preset_path("nanovlm-460m"))


@pytest.fixture(scope="module")
def engine(fixture_dir):
    eng = nanovlm_lite.load(str(fixture_dir))
    try:
        from nanovlm_lite.reduce.learned_pool import LearnedPool
    except ImportError:   # pool: learned not built: its cases fail, the others still run
        return eng
    # an untrained learned-pool module (the cost does not depend on its weights)
    eng.model.learned_pool = LearnedPool(eng.cfg.lm_hidden_dim, 2)
    return eng


@pytest.fixture(scope="module")
def case0(fixture_dir, fixture_cases):
    case = fixture_cases[0]
    return Image.open(fixture_dir / case["image"]), case["text"]


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b))


# ------------------------------------------------------------------ the issue's numbers
def test_460m_640x480_matches_the_issue_and_design(cfg460):
    plan = plan_for_size(cfg460, PointSettings(), 640, 480, text_tokens=40)
    row = price(cfg460, plan)
    assert (row["tiles"], row["image_tokens"]) == (13, 832)
    assert row["vision"] == 2_779_514_929_152
    assert row["projector"] == 19_629_342_720
    # DESIGN.md: linear 2*L*(2d^2 + 2*d*d_kv + 3*d*I) per token + 4*L*S^2*d attention (dense)
    L, d, d_kv, inter, S = 32, 960, 320, 2560, row["sequence_length"]
    assert S == 8 + 13 + 832 + 40   # template + tile markers + image + text
    linear_per_token = 2 * L * (2 * d * d + 2 * d * d_kv + 3 * d * inter)
    assert row["lm_prefill"] == linear_per_token * S + 4 * L * S * S * d
    assert linear_per_token == 629_145_600   # 629.1 MFLOPs
    assert row["lm_head"] == 2 * 960 * 49218 == 94_498_560                   # 94.5 MFLOPs
    assert round(row["vision"] / 13 / 1e9, 3) == 213.809
    assert round(row["projector"] / 13 / 1e9, 3) == 1.510
    assert round(row["total"] / 1e12, 2) == 3.46
    assert row["total"] == sum(row[k] for k in COMPONENTS)
    assert 0.79 < row["vision"] / row["total"] < 0.81   # "80% of it in the ViT"


def test_decode_step_and_generation_cost(cfg460):
    plan = plan_for_size(cfg460, PointSettings(scoring="generate"), 640, 480, 40, decode_tokens=5)
    row = price(cfg460, plan)
    S, L, d = plan.sequence_length, 32, 960
    step = lambda t: 629_145_600 + 4 * L * (S + t + 1) * d + 94_498_560  # noqa: E731
    assert plan.decode_steps == 4   # 5 tokens: the prefill's logits choose the first
    assert row["decode_per_token"] == step(0)
    assert row["decode"] == sum(step(t) for t in range(4))
    no_decode = price(cfg460, plan_for_size(cfg460, PointSettings(), 640, 480, 40))
    assert flops.generation_flops(cfg460, plan, 5) == row["total"]
    assert row["total"] == no_decode["total"] + row["decode"]
    assert flops.generation_flops(cfg460, plan, 1) == no_decode["total"]


# -------------------------------------------------------------- the fixture, real weights
def test_fixture_analytic_equals_measured_on_cpu(engine, fixture_dir, fixture_cases):
    for case in fixture_cases:
        prompt = engine.prepare(Image.open(fixture_dir / case["image"]), case["text"])
        row = price(engine.cfg, plan_for_prompt(engine.cfg, PointSettings(), prompt))
        measured = measure(engine, prompt, PointSettings())
        assert row["tiles"] == case["n_tiles"]
        assert row["sequence_length"] == len(case["input_ids"])
        for key in (*COMPONENTS, "decode_per_token", "total"):
            assert measured[key] == row[key], key
        assert measured["vision"] > 0 and measured["lm_prefill"] > 0


def test_cpu_counts_attention_only_with_the_math_kernel(engine, case0):
    """FlopCounterMode counts 0 for the CPU flash kernel: `measure` must not."""
    prompt = engine.prepare(*case0)
    with FlopCounterMode(display=False) as fc:
        engine.prefill([prompt])
    default_kernel = fc.get_total_flops()
    measured = measure(engine, prompt, PointSettings())
    plan = plan_for_prompt(engine.cfg, PointSettings(), prompt)
    attention = sum(flops.attention_flops(engine.cfg, n, n) for n in plan.block_lengths)
    prefill = measured["vision"] + measured["projector"] + measured["lm_prefill"]
    assert prefill - default_kernel >= attention > 0


def test_measured_decode_is_what_generate_runs(engine, case0):
    prompt = engine.prepare(*case0)
    settings = PointSettings(scoring="generate", max_new_tokens=5)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        tokens = engine.generate([prompt], settings, max_new_tokens=5, stop_at_eos=False)
    assert len(tokens[0]) == 5
    measured = measure(engine, prompt, settings, decode_tokens=5)
    analytic = price(engine.cfg, plan_for_prompt(engine.cfg, settings, prompt, decode_tokens=5))
    assert fc.get_total_flops() == measured["total"] == analytic["total"]


def test_cloze_price_is_what_the_cloze_scorer_runs(engine, case0):
    """The evaluator's cloze scorer (shared prefix, choices as continuations) spends what
    the plan prices when its choices need no padding (equal token counts)."""
    from nanovlm_lite.evaluate.mcq import choice_log_likelihoods, choice_token_ids
    words = ["cat", "dog", "red", "sun", "boat", "tree", "kite", "ball", "car", "hat"]
    by_len = {}
    for w in words:
        by_len.setdefault(len(choice_token_ids(engine.tokenizer, w)), []).append(w)
    n, choices = max(((k, v) for k, v in by_len.items() if len(v) >= 2), key=lambda kv: len(kv[1]))
    settings = PointSettings(scoring="cloze")
    prompt = engine.prepare(case0[0], "What is it?", settings)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        choice_log_likelihoods(engine, [prompt], [choices], settings)
    plan = plan_for_prompt(engine.cfg, settings, prompt, choice_tokens=[n] * len(choices))
    assert fc.get_total_flops() == price(engine.cfg, plan)["total"]


def test_plan_for_size_gives_the_prepared_prompts_length(engine, fixture_dir, fixture_cases):
    cfg, tok = engine.cfg, engine.tokenizer
    template = template_tokens(cfg, tok)
    for settings in (PointSettings(), PointSettings(global_only=True), PointSettings(max_tiles=2),
                     PointSettings(tile_size=128), PointSettings(vit_blocks=1),
                     PointSettings(resize_to_max_side_len=False)):
        for case in fixture_cases:
            image = Image.open(fixture_dir / case["image"])
            prompt = engine.prepare(image, case["text"], settings)
            text = len(tok.encode(case["text"], add_special_tokens=False))
            plan = plan_for_size(cfg, settings, *image.size, text, template=template)
            assert (plan.n_tiles, plan.image_tokens, plan.sequence_length) == (
                prompt.n_tiles, prompt.image_tokens, prompt.sequence_length)


# ------------------------------------------------------------- nanovlm-460m, meta device
@pytest.mark.parametrize("size,settings,tiles", [
    ((640, 480), {}, 13),
    ((300, 500), {}, 13),
    ((1000, 240), {}, 5),
    ((640, 640), {}, 17),
    ((305, 229), {"max_img_size": 512}, 1),
    ((400, 300), {"resize_to_max_side_len": False}, 1),
])
def test_460m_analytic_matches_measured(cfg460, size, settings, tiles):
    row = count_question(cfg460, PointSettings.from_dict(settings), *size, text_tokens=40,
                         measure_it=True)
    assert row["tiles"] == tiles
    assert rel(row["total"], row["measured_total"]) < TOL
    for key in COMPONENTS:
        assert row[key] == row[f"measured_{key}"], key


# ------------------------------------------------------------------- every setting
# Every knob of PointSettings, alone and combined. Values valid for both models (the
# fixture: 64 px tiles, patch 16, shuffle 2, 3 LM blocks; nanovlm-460m: 512, 16, 4, 32).
SETTINGS_CASES = {
    "default": {},
    "prompt": {"prompt": "short"},
    "generate": {"scoring": "generate", "max_new_tokens": 3},
    "cloze": {"scoring": "cloze"},
    "cloze-sum": {"scoring": "cloze", "cloze_normalise": "sum"},
    "direct-answer": {"direct_answer": True},
    "finetune": {"finetune": "aokvqa-mcq"},
    "max-img-size": {"max_img_size": 512},
    "no-upscale": {"resize_to_max_side_len": False},
    "max-tiles": {"max_tiles": 2},
    "global-only": {"global_only": True},
    "blank-images": {"blank_images": True},
    "tile-128": {"tile_size": 128},
    "tile-256-global": {"tile_size": 256, "global_only": True},
    "pool-avg": {"pool": "avg"},
    "pool-max-4": {"tile_size": 256, "pool": "max", "pool_factor": 4},
    "pool-learned": {"pool": "learned"},
    "select-norm": {"select": "norm", "keep_ratio": 0.5},
    "select-attention": {"select": "attention", "keep_ratio": 0.25},
    "select-random": {"select": "random", "keep_ratio": 0.5, "seed": 3},
    "fastv": {"fastv_layer": 1, "fastv_ratio": 0.5},
    "vit-blocks": {"vit_blocks": 1},
    "skip-lm-blocks": {"skip_lm_blocks": [1]},
    "global-tile128-pool-generate": {"global_only": True, "tile_size": 128, "pool": "avg",
                                     "scoring": "generate", "max_new_tokens": 3},
    "select-fastv-skip-cloze": {"select": "norm", "keep_ratio": 0.5, "fastv_layer": 0,
                                "fastv_ratio": 0.3, "skip_lm_blocks": [2], "scoring": "cloze"},
    "tiles-vit-fastv-generate": {"max_tiles": 4, "vit_blocks": 1, "fastv_layer": 1,
                                 "fastv_ratio": 0.6, "scoring": "generate", "max_new_tokens": 3},
    "attention-skip-generate": {"select": "attention", "keep_ratio": 0.5, "vit_blocks": 1,
                                "skip_lm_blocks": [0], "scoring": "generate",
                                "max_new_tokens": 2},
    "learned-fastv-cloze": {"pool": "learned", "fastv_layer": 1, "fastv_ratio": 0.5,
                            "scoring": "cloze", "max_img_size": 512},
    "vit-merge": {"vit_merge_ratio": 0.5},
    "vit-merge-start-tile128-pool-fastv": {"vit_merge_ratio": 0.75, "vit_merge_start": 1,
                                           "tile_size": 128, "pool": "avg", "fastv_layer": 1,
                                           "fastv_ratio": 0.5},
    "vit-merge-global-norm-cloze": {"vit_merge_ratio": 0.25, "global_only": True,
                                    "select": "norm", "keep_ratio": 0.5, "scoring": "cloze"},
    "vit-merge-learned-cloze": {"vit_merge_ratio": 0.5, "pool": "learned", "scoring": "cloze"},
    "vit-hourglass": {"vit_hourglass_block": 1},
    "vit-hourglass-4-blocks-generate": {"vit_hourglass_block": 0, "vit_hourglass_factor": 4,
                                        "vit_blocks": 2, "max_tiles": 2, "scoring": "generate",
                                        "max_new_tokens": 3},
    "vit-hourglass-learned-skip": {"vit_hourglass_block": 1, "pool": "learned",
                                   "skip_lm_blocks": [1], "max_img_size": 512},
    # width pruning: priced and run on the pruned widths (the fixture pruned by a random
    # importance, nanovlm-460m's config pruned on the meta device)
    "prune-mlp": {"prune_vit_mlp": 0.5, "prune_lm_mlp": 0.25},
    "prune-vit-global-cloze": {"prune_vit_mlp": 0.3, "global_only": True, "scoring": "cloze"},
    "prune-lm-fastv-merge-generate": {"prune_lm_mlp": 0.5, "fastv_layer": 1, "fastv_ratio": 0.5,
                                      "vit_merge_ratio": 0.5, "scoring": "generate",
                                      "max_new_tokens": 3},
    "prune-learned-skip-tile128": {"prune_vit_mlp": 0.75, "prune_lm_mlp": 0.75,
                                   "pool": "learned", "skip_lm_blocks": [0], "tile_size": 128},
}


def _pruned(engine, settings):
    """The engine a point that prunes runs on: its MLPs narrowed (by a random importance:
    the cost does not depend on which channels stay); the engine itself otherwise."""
    if not settings.prunes:
        return engine
    from nanovlm_lite.engine import Engine
    from nanovlm_lite.prune.apply import prune_model
    g = torch.Generator().manual_seed(0)
    cfg = engine.cfg
    importance = {f"vit.{i}": torch.rand(cfg.vit_inter_dim, generator=g)
                  for i in range(cfg.vit_n_blocks)}
    importance.update({f"lm.{i}": torch.rand(cfg.lm_inter_dim, generator=g)
                       for i in range(cfg.lm_n_blocks)})
    return Engine(prune_model(engine.model, importance, settings), engine.tokenizer, None)


def _workload(settings: PointSettings) -> tuple[int, tuple]:
    """(tokens generated, cloze choice token counts) a question at these settings has."""
    if settings.scoring == "generate":
        return settings.max_new_tokens, ()
    return 0, CHOICES if settings.scoring == "cloze" else ()


def test_every_setting_has_a_case():
    """A new PointSettings field must get an entry in SETTINGS_CASES."""
    default = PointSettings()
    for f in dataclasses.fields(PointSettings):
        changed = [name for name, case in SETTINGS_CASES.items()
                   if f.name in case and PointSettings.from_dict(case).to_dict()[f.name]
                   != default.to_dict()[f.name]]
        assert changed, f"no case in SETTINGS_CASES changes {f.name!r}"
    from nanovlm_lite.settings import POOL_METHODS, SCORING_MODES, SELECT_METHODS
    used = lambda key: {c.get(key) for c in SETTINGS_CASES.values()}  # noqa: E731
    assert set(SCORING_MODES) - {"letter"} <= used("scoring")
    assert set(POOL_METHODS) - {None} <= used("pool")
    assert set(SELECT_METHODS) - {None} <= used("select")


@pytest.mark.parametrize("name", list(SETTINGS_CASES))
def test_every_setting_analytic_matches_measured(name, engine, case0, cfg460):
    from nanovlm_lite.model.widths import pruned_config
    settings = PointSettings.from_dict(SETTINGS_CASES[name])
    decode, choices = _workload(settings)
    engine, cfg460 = _pruned(engine, settings), pruned_config(cfg460, settings)
    # the fixture checkpoint, real weights on the CPU, through Engine.prefill
    prompt = engine.prepare(*case0, settings)
    analytic = price(engine.cfg, plan_for_prompt(engine.cfg, settings, prompt, decode, choices))
    measured = measure(engine, prompt, settings, decode, choices)
    assert rel(analytic["total"], measured["total"]) < TOL, (analytic, measured)
    # the same prompt on the meta device counts the same (the path big models take)
    on_meta = measure(meta_engine(engine.cfg), prompt, settings, decode, choices)
    assert {k: on_meta[k] for k in COMPONENTS} == {k: measured[k] for k in COMPONENTS}
    # nanovlm-460m on the meta device
    plan = plan_for_size(cfg460, settings, 640, 480, 40, decode, choices)
    prompt = synthetic_prompt(cfg460, settings, plan.n_tiles, plan.sequence_length, plan.grid)
    measured = measure(meta_engine(cfg460), prompt, settings, decode, choices,
                       decode_per_token=False)
    assert rel(price(cfg460, plan)["total"], measured["total"]) < TOL


def test_knobs_change_the_plan(cfg460):
    base = plan_for_size(cfg460, PointSettings(), 640, 480, 40)
    plan = lambda **kw: plan_for_size(cfg460, PointSettings(**kw), 640, 480, 40)  # noqa: E731
    assert plan(global_only=True).n_tiles == 1
    assert plan(max_tiles=4).n_tiles == 5
    assert plan(tile_size=256).patches_per_tile == 256
    assert plan(pool="avg").tokens_per_tile == 16
    assert plan(select="norm", keep_ratio=0.5).image_tokens == 13 * 32
    assert plan(vit_blocks=6).vit_blocks == 6
    assert plan(skip_lm_blocks=(3, 4)).lm_blocks == tuple(b for b in range(32) if b not in (3, 4))
    fv = plan(fastv_layer=2, fastv_ratio=0.5)
    assert fv.fastv_dropped == fastv_dropped(832, 0.5) == 416
    assert fv.block_lengths[:3] == (base.sequence_length,) * 3
    assert set(fv.block_lengths[3:]) == {base.sequence_length - 416}
    assert fastv_dropped(64, 0.3) == 19
    with pytest.raises(SettingsError):
        plan(fastv_layer=2, fastv_ratio=0.5, skip_lm_blocks=(2,))
    cloze = plan_for_size(cfg460, PointSettings(scoring="cloze"), 640, 480, 40,
                          choice_tokens=(1, 2, 3))
    assert cloze.logit_positions == 1 + 0 + 1 + 2


# ------------------------------------------------------------ records and the profile
def _records(engine, fixture_dir, fixture_cases, settings):
    out = []
    decode, choices = _workload(settings)
    for i, case in enumerate(fixture_cases):
        image = Image.open(fixture_dir / case["image"])
        p = engine.prepare(image, case["text"], settings)
        rec = {"question_id": f"q{i}", "n_tiles": p.n_tiles, "image_tokens": p.image_tokens,
               "sequence_length": p.sequence_length, "image_size": list(image.size),
               "decode_tokens": decode, "scoring": settings.scoring}
        if choices:
            rec["choice_tokens"] = list(choices)
        out.append(rec)
    return out


@pytest.mark.parametrize("point", [{}, {"scoring": "generate", "max_new_tokens": 3},
                                   {"scoring": "cloze", "global_only": True}])
def test_profile_point(tmp_path, engine, fixture_dir, fixture_cases, point):
    settings = PointSettings.from_dict(point)
    records = _records(engine, fixture_dir, fixture_cases, settings)
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records)
                    + json.dumps({"question_id": "bad", "error": "unreadable image"}) + "\n")
    out = profile_point(str(fixture_dir), path, point, tmp_path / "p" / "flops.json",
                        measure_samples=2)
    assert json.loads((tmp_path / "p" / "flops.json").read_text()) == out
    assert (out["n_questions"], out["n_errors"]) == (4, 1)
    totals = [question_flops(engine.cfg, settings, r)["total"] for r in records]
    assert out["tflops_per_question"] == pytest.approx(sum(totals) / 4 / 1e12, rel=1e-12)
    assert out["tflops_per_question"] == pytest.approx(
        out["vision_tflops"] + out["projector_tflops"] + out["reduce_tflops"] + out["lm_tflops"])
    assert len(out["measured_sample"]) == 2 and out["max_rel_diff"] < TOL
    assert {s["analytic"] for s in out["measured_sample"]} == {min(totals), max(totals)}
    # each sampled question, measured through the real CPU path, agrees too
    for s in out["measured_sample"]:
        i = int(s["question_id"][1:])
        case = fixture_cases[i]
        p = engine.prepare(Image.open(fixture_dir / case["image"]), case["text"], settings)
        decode, choices = _workload(settings)
        assert measure(engine, p, settings, decode, choices)["total"] == s["measured"]


def test_profile_rejects_records_of_other_settings(tmp_path, engine, fixture_dir, fixture_cases):
    records = _records(engine, fixture_dir, fixture_cases, PointSettings())
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(ValueError, match="tiles|image tokens"):
        profile_point(str(fixture_dir), path, {"global_only": True}, tmp_path / "f.json")


def test_question_flops_prices_a_direct_answer_apart(cfg460):
    rec = {"question_id": "x", "n_tiles": 13, "image_tokens": 832, "sequence_length": 893,
           "decode_tokens": 0, "scoring": "letter", "da_sequence_length": 880,
           "da_decode_tokens": 3}
    out = question_flops(cfg460, {"direct_answer": True}, rec)
    letter = price(cfg460, plan_for_size(cfg460, PointSettings(), 640, 480, 40))
    assert out["total"] == letter["total"]
    da = plan_for_record(cfg460, PointSettings(scoring="generate"),
                         {"n_tiles": 13, "sequence_length": 880, "decode_tokens": 3})
    assert out["direct_answer_total"] == price(cfg460, da)["total"] > out["vision"]


# ------------------------------------------------------------------------ study + CLI
def test_study_points(tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text("points:\n  default: {}\n  small: {global_only: true, tile_size: 256}\n"
                   "  empty:\n")
    points = load_points(cfg)
    assert list(points) == ["default", "small", "empty"]
    assert points["small"] == PointSettings(global_only=True, tile_size=256)
    assert points["empty"] == PointSettings()
    s = point_settings(cfg, "small", ["pool=avg", "skip_lm_blocks=[3, 4]"])
    assert (s.pool, s.skip_lm_blocks, s.tile_size) == ("avg", (3, 4), 256)
    assert point_settings(None, None, ["pool=null"]) == PointSettings()
    assert parse_sets(["keep_ratio=0.5", "select=norm"]) == {"keep_ratio": 0.5, "select": "norm"}
    with pytest.raises(SettingsError, match="default, small, empty"):
        point_settings(cfg, "nope", [])
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        parse_sets(["pool"])
    with pytest.raises(SettingsError, match="unknown setting"):
        point_settings(cfg, "small", ["colour=red"])
    with pytest.raises(SettingsError, match="no such study config"):
        load_points(tmp_path / "missing.yaml")


def test_repo_study_configs_load():
    for name in ("config.yaml", "demo.yaml"):
        path = REPO / "config" / name
        if path.exists():
            assert load_points(path)


def _cli(capsys, *argv):
    code = cli_main(["flops", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json(capsys):
    code, out, _ = _cli(capsys, "--model", "nanovlm-460m", "--image-size", "640x480",
                        "--text-tokens", "40", "--measure", "--json")
    assert code == 0
    row = json.loads(out)
    for key in ("tiles", "image_tokens", "sequence_length", "vision", "projector", "lm_prefill",
                "lm_head", "decode_per_token", "total", "measured_total", "measured_vision",
                "measured_projector", "measured_lm_prefill", "measured_lm_head"):
        assert isinstance(row[key], int), key
    assert (row["tiles"], row["image_tokens"], row["vision"], row["projector"]) == (
        13, 832, 2_779_514_929_152, 19_629_342_720)
    assert rel(row["total"], row["measured_total"]) < TOL


def test_cli_text_with_the_checkpoints_tokenizer(capsys, engine, fixture_dir, case0):
    code, out, _ = _cli(capsys, "--model", str(fixture_dir), "--image-size", "640x480",
                        "--text", case0[1], "--decode-tokens", "3", "--measure", "--json")
    assert code == 0
    row = json.loads(out)
    prompt = engine.prepare(Image.new("RGB", (640, 480)), case0[1])
    assert row["sequence_length"] == prompt.sequence_length
    assert row["text_tokens"] == len(engine.tokenizer.encode(case0[1], add_special_tokens=False))
    assert row["decode_steps"] == 2 and row["total"] == row["measured_total"]


def test_cli_points(capsys, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("points:\n  default: {}\n  seed-generate: {scoring: generate}\n"
                     "  global-512: {global_only: true}\n  cheap: {global_only: true, "
                     "tile_size: 128}\n")
    code, out, _ = _cli(capsys, "--model", "nanovlm-460m", "--config", str(study), "--all-points",
                        "--text-tokens", "40", "--measure", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["point"] for r in rows] == ["default", "seed-generate", "global-512", "cheap"]
    assert all(rel(r["total"], r["measured_total"]) < TOL for r in rows)
    assert rows[2]["tiles"] == 1 and rows[3]["total"] < rows[2]["total"] < rows[0]["total"]
    # a generating point is priced with its own decode budget (upstream's default 10 tokens)
    assert rows[1]["decode_tokens"] == 10 and rows[1]["decode_steps"] == 9
    assert rows[1]["total"] > rows[0]["total"] and rows[0]["decode_steps"] == 0
    code, out, _ = _cli(capsys, "--model", "nanovlm-460m", "--config", str(study), "--point",
                        "global-512", "--set", "vit_blocks=6", "--text-tokens", "40", "--json")
    row = json.loads(out)
    assert row["point"] == "global-512" and row["vision"] < rows[2]["vision"]
    code, _, err = _cli(capsys, "--model", "nanovlm-460m", "--config", str(study), "--point",
                        "nope", "--text-tokens", "40")
    assert code == 2 and "default, seed-generate, global-512, cheap" in err
    code, _, err = _cli(capsys, "--model", "nanovlm-460m")
    assert code == 2 and "--text" in err
    code, _, err = _cli(capsys, "--model", "nanovlm-460m", "--image-size", "640",
                        "--text-tokens", "4")
    assert code == 2 and "WxH" in err


def test_counting_460m_is_fast_and_small():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "flops_memory.py"), "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["rel_diff"] < TOL
    assert result["seconds"] < 30
    assert result["peak_rss_mib"] < 1024   # the whole process, torch and transformers included


def test_synthetic_prompt_layout(cfg460):
    settings = PointSettings()
    plan = plan_for_size(cfg460, settings, 640, 480, 40)
    prompt = synthetic_prompt(cfg460, settings, plan.n_tiles, plan.sequence_length, plan.grid)
    image_id = cfg460.lm_base_vocab_size
    assert prompt.sequence_length == plan.sequence_length
    assert prompt.input_ids.count(image_id) == prompt.image_tokens == 832
    assert prompt.image.tiles.is_meta and prompt.image.tiles.shape == (13, 3, 512, 512)
    assert torch.tensor(prompt.input_ids).max() < cfg460.lm_vocab_size


def test_per_module_breakdown(cfg460):
    """FlopCounterMode's module hierarchy, under the model's own names, matches the
    per-block formulas."""
    settings = PointSettings()
    plan = plan_for_size(cfg460, settings, 640, 480, 40)
    prompt = synthetic_prompt(cfg460, settings, plan.n_tiles, plan.sequence_length)
    measured = measure(meta_engine(cfg460), prompt, settings, modules=True,
                       decode_per_token=False)
    modules = measured["modules"]
    N, D, inter, S = 1024, 768, 3072, plan.sequence_length
    vit_block = 13 * (8 * N * D * D + 4 * N * N * D + 4 * N * D * inter)
    lm_block = flops.lm_linear_flops(cfg460, S) + flops.attention_flops(cfg460, S, S)
    for i in range(12):   # transformers 4 has a .vision_model level that 5 does not
        [key] = [k for k in modules if k.startswith("NanoVLM.vision.")
                 and k.endswith(f".encoder.layers.{i}")]
        assert modules[key] == vit_block
    for i in range(32):
        assert modules[f"NanoVLM.lm.model.layers.{i}"] == lm_block
    assert modules["NanoVLM.projector"] == measured["projector"] == price(cfg460, plan)["projector"]
    assert modules["Global"] == sum(measured[k] for k in ("vision", "projector", "reduce",
                                                          "lm_prefill"))


def test_reduce_component_adds_every_knob_that_reduces(cfg460):
    """vit_merge's matching and the learned pool both run: the reduce component is their sum
    (not only the first knob found), exactly as counted."""
    settings = PointSettings.from_dict({"vit_merge_ratio": 0.5, "pool": "learned"})
    plan = plan_for_size(cfg460, settings, 640, 480, 40, 0, ())
    prompt = synthetic_prompt(cfg460, settings, plan.n_tiles, plan.sequence_length, plan.grid)
    measured = measure(meta_engine(cfg460), prompt, settings, decode_per_token=False)
    assert price(cfg460, plan)["reduce"] == measured["reduce"]
    assert price(cfg460, plan)["total"] == measured["total"]
