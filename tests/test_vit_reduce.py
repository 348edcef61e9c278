"""Token reduction inside the ViT: merging with unmerge (reduce/vit_merge.py) and the
hourglass (reduce/vit_hourglass.py). Off, they reproduce upstream's outputs; on inputs
whose merged tokens are exact copies they compute what the full ViT computes; batching
changes nothing; bad settings are refused by name."""
import numpy as np
import pytest
import torch
from PIL import Image

import nanovlm_lite
from nanovlm_lite.flops import price
from nanovlm_lite.flops_profile import count_question
from nanovlm_lite.model.config import load_config, preset_path
from nanovlm_lite.plan import plan_for_size
from nanovlm_lite.reduce import vit_hourglass, vit_merge
from nanovlm_lite.settings import PointSettings as S
from nanovlm_lite.settings import SettingsError

ON = [S(vit_merge_ratio=0.5), S(vit_merge_ratio=0.25, vit_merge_start=1),
      S(vit_hourglass_block=1), S(vit_hourglass_block=0, vit_hourglass_factor=4)]


@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


@pytest.fixture(scope="module")
def prompts_of(engine, fixture_dir, fixture_cases):
    def make(settings):
        return [engine.prepare(Image.open(fixture_dir / c["image"]), c["text"], settings)
                for c in fixture_cases]
    return make


def _blocky(n, grid, cell, dim, seed=0):
    """[n, grid*grid, dim] hidden states constant over each cell x cell window."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, grid // cell, 1, grid // cell, 1, dim, generator=g)
    full = coarse.expand(n, grid // cell, cell, grid // cell, cell, dim)
    return full.reshape(n, grid * grid, dim).contiguous()


def _plain(layers, hidden):
    for layer in layers:
        out = layer(hidden, attention_mask=None)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


# --------------------------------------------------------------------- off = upstream
@pytest.mark.parametrize("settings", [S(vit_merge_ratio=0.0, vit_merge_start=1),
                                      S(vit_hourglass_factor=4)])
def test_off_reproduces_the_parity_fixture(engine, prompts_of, fixture_dir, fixture_cases,
                                           settings):
    for case, prompt in zip(fixture_cases, prompts_of(settings)):
        logits = engine.next_token_logits([prompt], settings)[0].numpy()
        assert np.abs(logits - np.load(fixture_dir / case["logits"])).max() < 1e-4


# ------------------------------------------------------------- the methods themselves
def test_merge_groups_and_sizes():
    x = torch.randn(3, 64, 8)
    m = vit_merge.Merge(x, 20)
    assert m.tokens == 44 and m.slot.shape == (3, 64)
    assert torch.equal(m.size.sum(-1), torch.full((3,), 64.0))
    dst, _ = vit_merge._split(64, x.device)
    assert dst.tolist() == [r * 8 + c for r in range(0, 8, 2) for c in range(0, 8, 2)]
    # destinations each keep a token of their own; a group's token is its members' mean
    assert len(set(m.slot[0, dst].tolist())) == 16
    merged = m.merge(x)
    for slot in range(m.tokens):
        members = (m.slot[0] == slot).nonzero().flatten()
        assert torch.allclose(merged[0, slot], x[0, members].mean(0), atol=1e-6)
    assert torch.equal(m.unmerge(merged)[0, dst], merged[0, m.slot[0, dst]])


def test_merging_exact_copies_computes_the_full_block(engine):
    """Sources that copy their 2x2 cell's destination merge into it, and proportional
    attention makes attention over one token of size k equal attention over k copies."""
    layers = engine.model.vit.encoder.layers
    x = _blocky(2, 8, 2, engine.cfg.vit_hidden_dim)
    full = _plain(layers, x)
    for ratio in (0.25, 0.5, 0.75):
        merged = vit_merge.run_blocks(layers, x, ratio, start=0)
        assert torch.allclose(merged, full, atol=1e-4), ratio
    # without the log-size bias, groups of unequal size attend wrongly: the test can tell
    m = vit_merge.Merge(x, 24)
    assert len(set(m.size[0].tolist())) > 1
    ln = layers[0].layer_norm1(x)
    biased, _ = layers[0].self_attn(hidden_states=m.merge(ln), attention_mask=m.attention_bias())
    plain, _ = layers[0].self_attn(hidden_states=m.merge(ln), attention_mask=None)
    reference, _ = layers[0].self_attn(hidden_states=ln, attention_mask=None)
    assert torch.allclose(m.unmerge(biased), reference, atol=1e-4)
    assert not torch.allclose(m.unmerge(plain), reference, atol=1e-3)


@pytest.mark.parametrize("block,factor", [(0, 2), (1, 2), (0, 4)])
def test_hourglass_on_a_coarse_input_computes_the_full_vit(engine, block, factor):
    """A grid already constant over f x f windows loses nothing to pooling; attention over
    f^2 copies of every key is attention over one of each."""
    layers = engine.model.vit.encoder.layers
    x = _blocky(2, 8, 4, engine.cfg.vit_hidden_dim)   # constant over 4x4 windows
    assert torch.allclose(vit_hourglass.run_blocks(layers, x, block, factor),
                          _plain(layers, x), atol=1e-4)
    # on a real input the coarse blocks do change the output
    y = torch.randn(2, 64, engine.cfg.vit_hidden_dim)
    assert not torch.allclose(vit_hourglass.run_blocks(layers, y, block, factor),
                              _plain(layers, y), atol=1e-3)


def test_hourglass_upsample_inverts_pooling_layout():
    from nanovlm_lite.reduce.learned_pool import pool_windows
    x = _blocky(1, 8, 2, 4)
    coarse = pool_windows(x, 8, 2).mean(2)
    assert torch.equal(vit_hourglass.upsample(coarse, 8, 2), x)


# ----------------------------------------------------------------------- the engine
@pytest.mark.parametrize("settings", ON, ids=lambda s: str(s.changed()))
def test_batched_equals_alone_and_changes_the_answer(engine, prompts_of, settings):
    prompts = prompts_of(settings)
    batched = engine.next_token_logits(prompts, settings)
    plain = engine.next_token_logits(prompts_of(S()))
    for i, prompt in enumerate(prompts):
        alone = engine.next_token_logits([prompt], settings)[0]
        assert torch.allclose(batched[i], alone, atol=1e-4)
    assert not torch.allclose(batched, plain, atol=1e-3)   # it really computes something else


@pytest.mark.parametrize("settings", [
    S(vit_merge_ratio=0.5, tile_size=128, pool="avg", fastv_layer=1, fastv_ratio=0.5),
    S(vit_merge_ratio=0.5, global_only=True, select="norm", keep_ratio=0.5),
    S(vit_hourglass_block=1, vit_blocks=2, max_tiles=2, select="random", keep_ratio=0.5),
    S(vit_hourglass_block=0, tile_size=128, vit_hourglass_factor=4, scoring="generate"),
], ids=range(4))
def test_works_with_the_other_knobs(engine, prompts_of, settings):
    prompts = prompts_of(settings)
    tokens = engine.generate(prompts, settings, max_new_tokens=2, stop_at_eos=False)
    assert [len(t) for t in tokens] == [2] * len(prompts)
    assert torch.isfinite(engine.next_token_logits(prompts, settings)).all()


# --------------------------------------------------------------------- accounting
def test_plan_carries_the_tokens_of_every_vit_block():
    cfg = load_config(preset_path("nanovlm-460m"))
    plan = lambda **kw: plan_for_size(cfg, S(**kw), 640, 480, 40)  # noqa: E731
    assert plan().vit_block_tokens == (1024,) * 12
    merge = plan(vit_merge_ratio=0.5, vit_merge_start=2)
    assert merge.vit_block_tokens == (1024,) * 2 + (512,) * 10
    assert (merge.vit_match, merge.vit_match_blocks) == ((768, 256), 10)
    assert plan(vit_hourglass_block=4).vit_block_tokens == (1024,) * 4 + (256,) * 8
    assert plan(vit_hourglass_block=4, vit_hourglass_factor=4).vit_block_tokens[4:] == (64,) * 8
    assert plan(vit_hourglass_block=4, vit_blocks=6).vit_block_tokens == (1024,) * 4 + (256,) * 2
    base = price(cfg, plan())
    half = price(cfg, plan(vit_merge_ratio=0.5))
    assert half["reduce"] == 13 * 12 * 2 * 768 * 256 * 768      # the similarity matmuls
    assert half["vision"] < 0.5 * base["vision"]
    assert half["lm_prefill"] == base["lm_prefill"]             # the LM sees every token


@pytest.mark.parametrize("settings", [
    {"vit_merge_ratio": 0.5}, {"vit_merge_ratio": 0.75, "vit_merge_start": 6},
    {"vit_hourglass_block": 4}, {"vit_hourglass_block": 2, "vit_hourglass_factor": 4,
                                 "global_only": True, "tile_size": 256}])
def test_460m_measured_equals_analytic(settings):
    cfg = load_config(preset_path("nanovlm-460m"))
    row = count_question(cfg, S.from_dict(settings), 640, 480, text_tokens=40, measure_it=True)
    for key in ("vision", "reduce", "projector", "lm_prefill", "total"):
        assert row[key] == row[f"measured_{key}"], key


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize("settings,words", [
    ({"vit_merge_ratio": 0.8}, "vit_merge_ratio must be in [0, 0.75]"),
    ({"vit_merge_ratio": -0.1}, "vit_merge_ratio"),
    ({"vit_merge_start": -1}, "vit_merge_start must be >= 0"),
    ({"vit_hourglass_block": -2}, "vit_hourglass_block must be >= 0"),
    ({"vit_hourglass_factor": 1}, "vit_hourglass_factor must be >= 2"),
    ({"vit_merge_ratio": 0.5, "vit_hourglass_block": 1}, "use one of them per point"),
    ({"vit_merge_ratio": 0.5, "select": "attention", "keep_ratio": 0.5}, "select: attention"),
    ({"vit_hourglass_block": 1, "select": "attention", "keep_ratio": 0.5}, "select: attention"),
])
def test_bad_settings_are_refused_by_name(settings, words):
    with pytest.raises(SettingsError, match=words.replace("[", r"\[").replace("]", r"\]")):
        S.from_dict(settings, where="point x")


@pytest.mark.parametrize("settings,words", [
    (S(vit_merge_ratio=0.5, vit_merge_start=2), "vit_merge_start 2 is not one of the 2 ViT"),
    (S(vit_merge_ratio=0.5, vit_merge_start=1, vit_blocks=1), "vit_merge_start 1"),
    (S(vit_hourglass_block=2), "vit_hourglass_block 2 is not one of the 2 ViT blocks"),
    (S(vit_hourglass_block=0, vit_hourglass_factor=8), "must divide the 4x4 patch grid"),
    (S(vit_hourglass_block=0, vit_hourglass_factor=3, tile_size=128), "8x8 patch grid"),
])
def test_settings_impossible_for_the_model_are_refused(engine, settings, words):
    with pytest.raises(SettingsError, match=words):
        settings.check_against(engine.cfg)


def test_merge_ratio_beyond_the_sources_is_refused():
    with pytest.raises(ValueError, match="only 12 are sources"):
        vit_merge.merged_count(16, 0.9)


def test_merging_needs_an_even_patch_grid():
    from nanovlm_lite.model.config import VLMConfig
    cfg = VLMConfig(vit_patch_size=16, vit_img_size=48, mp_pixel_shuffle_factor=3)
    with pytest.raises(SettingsError, match="even patch grid.*48px tile has 3x3"):
        S(vit_merge_ratio=0.5).check_against(cfg)
    S(vit_hourglass_block=0, vit_hourglass_factor=3).check_against(cfg)   # 3 divides 3
