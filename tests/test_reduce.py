"""The FLOP-reduction knobs on tensors: tiling, tile size, ViT depth, token pooling and
selection, FastV, LM block skipping. The fixture checkpoint has 2x2 token grids per tile;
a random model with 128 px tiles (4x4 grids) makes pooling and selection meaningful."""
import copy

import pytest
import torch
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import nanovlm_lite
from nanovlm_lite.engine import Engine
from nanovlm_lite.lm import attention_mask_4d, decode_step
from nanovlm_lite.model.config import VLMConfig
from nanovlm_lite.model.load import build_model
from nanovlm_lite.model.prompt import build_tokenizer
from nanovlm_lite.plan import fastv_dropped
from nanovlm_lite.reduce.fastv import FastVCache
from nanovlm_lite.reduce.learned_pool import LearnedPool, learned_pool_flops
from nanovlm_lite.reduce.tokens import keep_count, pool_tokens, reduce_image_tokens, tokens_kept
from nanovlm_lite.settings import PointSettings as S
from nanovlm_lite.settings import SettingsError


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def engine(fixture_dir):
    return nanovlm_lite.load(str(fixture_dir))


def big_config() -> VLMConfig:
    return VLMConfig(
        vit_hidden_dim=32, vit_inter_dim=64, vit_patch_size=16, vit_img_size=128, vit_n_heads=2,
        vit_n_blocks=2, lm_hidden_dim=48, lm_inter_dim=64, lm_n_heads=4, lm_n_kv_heads=2,
        lm_n_blocks=3, lm_base_vocab_size=300, extra_token_amount=66, lm_vocab_size=366,
        mp_pixel_shuffle_factor=2, mp_image_token_length=16, max_img_size=256,
        lm_tokenizer="tokenizer", lm_model_type="none")


@pytest.fixture(scope="module")
def big(fixture_dir):
    """A random model whose tiles hold a 4x4 token grid (8x8 patches, shuffle 2)."""
    cfg = big_config()
    torch.manual_seed(0)
    model = build_model(cfg)
    return Engine(model, build_tokenizer(cfg, str(fixture_dir / "tokenizer")))


@pytest.fixture(scope="module")
def images(fixture_dir, fixture_cases):
    return [(Image.open(fixture_dir / c["image"]), c["text"]) for c in fixture_cases]


def prompts(engine, images, settings=S()):
    return [engine.prepare(img, text, settings) for img, text in images]


def n_image_slots(engine, prompt) -> int:
    return prompt.input_ids.count(engine.model.image_token_id)


# ---------------------------------------------------------------------- identity settings
IDENTITY = S(pool=None, select=None, keep_ratio=1.0, fastv_layer=1, fastv_ratio=0.0,
             vit_blocks=2, skip_lm_blocks=(), max_tiles=10_000)


def test_identity_settings_are_bit_identical_to_the_plain_engine(engine, images):
    plain, same = prompts(engine, images), prompts(engine, images, IDENTITY)
    assert [p.input_ids for p in plain] == [p.input_ids for p in same]
    assert torch.equal(engine.next_token_logits(plain), engine.next_token_logits(same, IDENTITY))
    tok_a, log_a = engine.generate(plain, max_new_tokens=4, stop_at_eos=False, return_logits=True)
    tok_b, log_b = engine.generate(same, IDENTITY, max_new_tokens=4, stop_at_eos=False,
                                   return_logits=True)
    assert tok_a == tok_b
    assert all(torch.equal(a, b) for a, b in zip(log_a, log_b))


@pytest.mark.parametrize("select", ["norm", "attention", "random"])
def test_selection_keeping_everything_is_bit_identical(big, images, select):
    settings = S(select=select, keep_ratio=1.0)
    plain, same = prompts(big, images[:2]), prompts(big, images[:2], settings)
    assert [p.input_ids for p in plain] == [p.input_ids for p in same]
    assert torch.equal(big.next_token_logits(plain), big.next_token_logits(same, settings))


# ------------------------------------------------------------------------------ tiling
def test_max_tiles_caps_the_grid(engine, images):
    img, text = images[0]                             # 640x480: a 3x4 grid + global view
    p = engine.prepare(img, text, S(max_tiles=4))
    assert p.image.grid == (2, 2) and p.n_tiles == 5
    assert n_image_slots(engine, p) == p.image_tokens == 5 * 4
    tok = engine.tokenizer.convert_tokens_to_ids
    assert tok("<row_2_col_2>") in p.input_ids and tok("<row_3_col_1>") not in p.input_ids
    assert torch.isfinite(engine.next_token_logits([p], S(max_tiles=4))).all()


def test_global_only_keeps_one_tile(engine, images):
    img, text = images[0]
    settings = S(global_only=True)
    p = engine.prepare(img, text, settings)
    assert p.n_tiles == 1 and p.image.has_global and n_image_slots(engine, p) == 4
    rows = [i for i in p.input_ids if engine.tokenizer.convert_ids_to_tokens(i).startswith("<row_")]
    assert rows == []
    assert torch.isfinite(engine.next_token_logits([p], settings)).all()


def test_max_img_size_and_resize_to_max_side_len(engine, images):
    img, text = images[2]                             # 96x96: upscaled to 256 = 4x4 tiles
    assert engine.prepare(img, text).image.grid == (4, 4)
    assert engine.prepare(img, text, S(max_img_size=128)).image.grid == (2, 2)
    # no upscaling: the long side goes to ceil(96 / 64) * 64 = 128
    assert engine.prepare(img, text, S(resize_to_max_side_len=False)).image.grid == (2, 2)


def test_tile_size_changes_the_token_grid(engine, images):
    img, text = images[0]
    settings = S(tile_size=128)                       # 8x8 patches -> 4x4 tokens per tile
    p = engine.prepare(img, text, settings)
    # 640x480 -> 256x192, short side rounded up to 256: 2x2 tiles of 128 + the global view
    assert p.image.tiles.shape[-1] == 128 and p.image.grid == (2, 2)
    assert p.tokens_per_tile == [16] * 5 and n_image_slots(engine, p) == 80
    tokens = engine.image_tokens([p], settings)      # interpolated position embeddings
    assert tokens.shape == (5, 16, engine.cfg.lm_hidden_dim)
    assert torch.isfinite(engine.next_token_logits([p], settings)).all()


# ------------------------------------------------------------------------------- depth
def _truncated_vit(engine, n_blocks):
    model = copy.deepcopy(engine.model)
    model.vit.encoder.layers = model.vit.encoder.layers[:n_blocks]
    return Engine(model, engine.tokenizer)


def test_vit_blocks_equals_a_model_with_fewer_vit_blocks(engine, images):
    settings = S(vit_blocks=1)
    ps = prompts(engine, images)
    short = _truncated_vit(engine, 1)
    got = engine.next_token_logits(ps, settings)
    assert torch.equal(got, short.next_token_logits(ps))
    assert not torch.allclose(got, engine.next_token_logits(ps))


def _without_lm_blocks(engine, skip):
    model = copy.deepcopy(engine.model)
    keep = [layer for i, layer in enumerate(model.lm.model.layers) if i not in skip]
    for new_index, layer in enumerate(keep):
        layer.self_attn.layer_idx = new_index
    model.lm.model.layers = torch.nn.ModuleList(keep)
    model.lm.config.num_hidden_layers = len(keep)
    return Engine(model, engine.tokenizer)


def test_skip_lm_blocks_equals_a_model_without_those_blocks(engine, images):
    settings = S(skip_lm_blocks=(1,))
    ps = prompts(engine, images)
    removed = _without_lm_blocks(engine, {1})
    got = engine.next_token_logits(ps, settings)
    assert torch.equal(got, removed.next_token_logits(ps))
    assert not torch.allclose(got, engine.next_token_logits(ps))
    tok_a, log_a = engine.generate(ps, settings, max_new_tokens=4, stop_at_eos=False,
                                   return_logits=True)
    tok_b, log_b = removed.generate(ps, max_new_tokens=4, stop_at_eos=False, return_logits=True)
    assert tok_a == tok_b
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(log_a, log_b))


# ----------------------------------------------------------------------- kept-token counts
def test_tokens_kept_formulas():
    assert tokens_kept(64, 8, S()) == 64
    assert tokens_kept(64, 8, S(pool="avg", pool_factor=2)) == 16
    assert tokens_kept(64, 8, S(pool="max", pool_factor=4)) == 4
    assert tokens_kept(64, 8, S(pool="learned", pool_factor=8)) == 1
    with pytest.raises(SettingsError, match="divide"):
        tokens_kept(64, 8, S(pool="avg", pool_factor=3))
    # select: max(1, round(keep_ratio * tokens)), Python's round (half to even)
    assert tokens_kept(64, 8, S(select="norm", keep_ratio=0.3)) == 19       # 19.2
    assert tokens_kept(64, 8, S(select="random", keep_ratio=0.25)) == 16
    assert tokens_kept(64, 8, S(select="norm", keep_ratio=0.01)) == 1       # 0.64 -> floor 1
    assert keep_count(4, 0.625) == 2                                        # 2.5 -> 2
    assert keep_count(4, 0.875) == 4                                        # 3.5 -> 4
    assert keep_count(1, 0.1) == 1


@pytest.mark.parametrize("settings, per_tile", [
    (S(pool="avg"), 4), (S(pool="max", pool_factor=4), 1), (S(select="norm", keep_ratio=0.5), 8),
    (S(select="attention", keep_ratio=0.3), 5), (S(select="random", keep_ratio=0.1), 2)])
def test_prompt_carries_exactly_the_kept_tokens(big, images, settings, per_tile):
    ps = prompts(big, images, settings)
    for p in ps:
        assert p.tokens_per_tile == [per_tile] * p.n_tiles
        assert n_image_slots(big, p) == per_tile * p.n_tiles
    tokens = big.image_tokens(ps, settings)
    assert tokens.shape == (sum(p.n_tiles for p in ps), per_tile, big.cfg.lm_hidden_dim)
    logits = big.next_token_logits(ps, settings)    # the slots and tokens line up
    assert torch.isfinite(logits).all()
    assert not torch.allclose(logits, big.next_token_logits(prompts(big, images)))


# ------------------------------------------------------------------------------ pooling
def test_avg_and_max_pooling_by_hand():
    # one tile, a 4x4 grid of 2-channel tokens, row-major
    tokens = torch.arange(32.0).reshape(1, 16, 2)
    tokens[0, 5] = torch.tensor([100.0, -100.0])
    grid = tokens.reshape(4, 4, 2)
    avg, mx = [], []
    for r in range(2):
        for c in range(2):
            window = [grid[2 * r + i, 2 * c + j] for i in range(2) for j in range(2)]
            avg.append(sum(window) / 4)
            mx.append(torch.stack(window).amax(0))
    assert torch.allclose(pool_tokens(tokens, 4, 2, "avg")[0], torch.stack(avg))
    assert torch.equal(pool_tokens(tokens, 4, 2, "max")[0], torch.stack(mx))
    assert torch.equal(reduce_image_tokens(None, tokens, None, S(pool="max")), torch.stack(mx)[None])
    # window of token (0, 0) is tokens 0, 1, 4, 5
    assert torch.allclose(pool_tokens(tokens, 4, 2, "avg")[0, 0], tokens[0, [0, 1, 4, 5]].mean(0))
    assert torch.allclose(pool_tokens(tokens, 4, 4, "avg")[0, 0], tokens[0].mean(0))


def test_learned_pool_starts_as_average_pooling_and_can_learn():
    torch.manual_seed(1)
    tokens = torch.randn(3, 16, 24)
    pool = LearnedPool(24, 2)
    assert torch.allclose(pool(tokens, 4), pool_tokens(tokens, 4, 2, "avg"), atol=1e-6)
    with torch.no_grad():
        pool.window_logits[0, 0] = 2.0
        pool.excite.bias.fill_(0.5)
    assert not torch.allclose(pool(tokens, 4), pool_tokens(tokens, 4, 2, "avg"), atol=1e-3)
    rebuilt = LearnedPool.from_state_dict(pool.state_dict())
    assert rebuilt.factor == 2 and torch.equal(rebuilt(tokens, 4), pool(tokens, 4))


def test_learned_pool_size_and_flops_at_full_size():
    pool = LearnedPool(960, 2).to("meta")
    params = sum(p.numel() for p in pool.parameters())
    assert params == 4 + (960 * 160 + 160) + (160 * 960 + 960) == 308_324
    tokens = torch.empty(13, 64, 960, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = pool(tokens, 8)
    assert out.shape == (13, 16, 960)
    assert counter.get_total_flops() == 13 * learned_pool_flops(64, 960, 2)
    assert learned_pool_flops(64, 960, 2) == 2 * 64 * 960 + 4 * 960 * 160


def test_learned_pool_needs_trained_weights_except_on_meta(big):
    tokens = torch.randn(2, 16, big.cfg.lm_hidden_dim)
    with pytest.raises(SettingsError, match="nanovlm_lite_sidecar.safetensors"):
        reduce_image_tokens(big.model, tokens, None, S(pool="learned"))
    meta = build_model(big.cfg, "meta")
    out = reduce_image_tokens(meta, tokens.to("meta"), None, S(pool="learned"))
    assert out.shape == (2, 4, big.cfg.lm_hidden_dim)
    assert isinstance(meta.learned_pool, LearnedPool)
    with pytest.raises(SettingsError, match="pool_factor 2"):
        reduce_image_tokens(meta, tokens.to("meta"), None, S(pool="learned", pool_factor=4))


def test_learned_pool_runs_in_the_engine_once_attached(big, images):
    model = copy.deepcopy(big.model)
    model.learned_pool = LearnedPool(big.cfg.lm_hidden_dim, 2)
    eng = Engine(model, big.tokenizer)
    ps = prompts(eng, images[:2], S(pool="learned"))
    # untrained == average pooling
    assert torch.allclose(eng.next_token_logits(ps, S(pool="learned")),
                          eng.next_token_logits(ps, S(pool="avg")), atol=1e-5)


# ---------------------------------------------------------------------------- selection
def test_norm_selection_keeps_the_largest_in_order():
    # channel 0 sets the norm (the index tag in channel 1 is small beside it)
    size = torch.tensor([[50, 10, 90, 20, 80, 0, 30, 70, 11, 12, 60, 13, 14, 15, 40, 16],
                         list(range(10, 170, 10))], dtype=torch.float)
    tokens = torch.stack([size, torch.arange(16.0).expand(2, 16) * 1e-3], -1)
    out = reduce_image_tokens(None, tokens, None, S(select="norm", keep_ratio=0.25))
    kept = (out[..., 1] * 1e3).round().long().tolist()
    assert kept == [[2, 4, 7, 10], [12, 13, 14, 15]]        # the 4 largest, in grid order


def test_random_selection_is_seeded_per_image_and_in_order():
    tokens = torch.arange(16.0)[None, :, None].expand(5, 16, 4).clone()
    settings = S(select="random", keep_ratio=0.5)
    a = reduce_image_tokens(None, tokens, None, settings, tiles_per_image=[2, 3])
    b = reduce_image_tokens(None, tokens, None, settings, tiles_per_image=[2, 3])
    assert torch.equal(a, b)
    idx = a[..., 0].long()
    assert all(row == sorted(row) and len(set(row)) == 8 for row in idx.tolist())
    assert torch.equal(idx[0], idx[2]) and torch.equal(idx[1], idx[3])  # each image restarts
    assert not torch.equal(idx[0], idx[1])                              # tiles differ
    other = reduce_image_tokens(None, tokens, None, S(select="random", keep_ratio=0.5, seed=1),
                                tiles_per_image=[2, 3])
    assert not torch.equal(other, a)


def test_random_selection_is_the_same_batched_or_alone(big, images):
    settings = S(select="random", keep_ratio=0.5)
    ps = prompts(big, images, settings)
    batched = big.next_token_logits(ps, settings)
    for i, p in enumerate(ps):
        assert torch.allclose(batched[i], big.next_token_logits([p], settings)[0], atol=1e-4)


def _last_block_attention(model, pixels, n_blocks):
    """Softmax attention of the last block run, by transformers' eager attention."""
    vm = model.vit
    hidden = vm.embeddings(pixels)
    for layer in vm.encoder.layers[: n_blocks - 1]:
        hidden = layer(hidden, attention_mask=None)
    last = vm.encoder.layers[n_blocks - 1]
    config = last.self_attn.config
    saved, config._attn_implementation = config._attn_implementation, "eager"
    try:
        _, weights = last.self_attn(last.layer_norm1(hidden))
    finally:
        config._attn_implementation = saved
    return weights                                     # [tiles, heads, P, P]


@pytest.mark.parametrize("vit_blocks", [None, 1])
def test_attention_selection_matches_eager_attention(big, images, vit_blocks):
    settings = S(select="attention", keep_ratio=0.25, vit_blocks=vit_blocks)
    p = big.prepare(*images[0], settings)
    pixels = p.image.tiles
    with torch.no_grad():
        weights = _last_block_attention(big.model, pixels, vit_blocks or 2)
        received = weights.sum((1, 2)).reshape(-1, 4, 2, 4, 2).sum((2, 4)).reshape(-1, 16)
        full = big.model.encode_images(pixels, vit_blocks)
        got = big.image_tokens([p], settings)
    index = received.topk(4, dim=1).indices.sort(dim=1).values
    expected = full.gather(1, index[..., None].expand(-1, -1, full.shape[-1]))
    assert torch.allclose(got, expected, atol=1e-6)


def test_attention_selection_flops(big, images):
    p = big.prepare(*images[3])
    n_tiles = p.n_tiles
    counts = {}
    for select in ("norm", "attention"):
        settings = S(select=select, keep_ratio=0.5)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            big.image_tokens([p], settings)
        counts[select] = counter.get_total_flops()
    # the last block's q @ k^T once more: 2 * P^2 * D_vit per tile (P = 64 patches, D = 32)
    assert counts["attention"] - counts["norm"] == n_tiles * 2 * 64 * 64 * 32


def test_every_reduction_runs_on_meta(big):
    meta = build_model(big.cfg, "meta")
    tokens = torch.empty(3, 16, big.cfg.lm_hidden_dim, device="meta")
    features = torch.empty(3, 64, big.cfg.vit_hidden_dim, device="meta")
    for settings in (S(pool="avg"), S(pool="max"), S(select="norm", keep_ratio=0.5),
                     S(select="random", keep_ratio=0.5)):
        out = reduce_image_tokens(meta, tokens, features, settings)
        assert out.shape == (3, tokens_kept(16, 4, settings), big.cfg.lm_hidden_dim)


# --------------------------------------------------------------------------------- FastV
FASTV = S(fastv_layer=0, fastv_ratio=0.5)


def test_fastv_dropped_count():
    assert fastv_dropped(52, 0.5) == 26
    assert fastv_dropped(52, 0.3) == 15             # 15.6, rounded down
    assert fastv_dropped(3, 0.2) == 0
    assert fastv_dropped(0, 0.9) == 0


def test_fastv_drops_the_least_attended_image_tokens(engine, images):
    """The kept positions are the ones layer K's last position attended to most (eager
    attention as the reference), and layers after K compute exactly what they would on
    the kept tokens alone."""
    p = engine.prepare(*images[0])
    lm = engine.model.lm
    K = FASTV.fastv_layer
    captured = {}
    attn = lm.model.layers[K].self_attn
    hooks = [attn.register_forward_pre_hook(lambda m, a, kw: captured.update(kw=kw),
                                            with_kwargs=True),
             lm.model.layers[K].register_forward_hook(lambda m, a, out: captured.update(out=out))]
    try:
        engine.prefill([p])
    finally:
        for h in hooks:
            h.remove()
    # layer K's attention again, by transformers' eager path (it wants an additive mask)
    ids = torch.tensor(p.input_ids)
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    additive = torch.zeros(1, 1, len(ids), len(ids)).masked_fill(~causal, float("-inf"))
    saved, lm.config._attn_implementation = lm.config._attn_implementation, "eager"
    try:
        with torch.no_grad():
            _, weights = attn(hidden_states=captured["kw"]["hidden_states"], attention_mask=additive,
                              position_embeddings=captured["kw"]["position_embeddings"])
    finally:
        lm.config._attn_implementation = saved
    last = weights[0, :, -1].mean(0)                           # [T], mean over heads
    is_image = ids == engine.model.image_token_id
    image_pos = is_image.nonzero()[:, 0]
    n_drop = fastv_dropped(int(is_image.sum()), FASTV.fastv_ratio)
    dropped = image_pos[last[image_pos].topk(n_drop, largest=False).indices]
    keep = torch.ones(len(ids), dtype=torch.bool)
    keep[dropped] = False
    kept_pos = keep.nonzero()[:, 0]

    seen = {}
    hook = lm.model.layers[K + 1].register_forward_pre_hook(
        lambda m, a, kw: seen.update(pos=kw["position_ids"]), with_kwargs=True)
    try:
        hidden, _, cache = engine.prefill([p], FASTV)
    finally:
        hook.remove()
    assert torch.equal(seen["pos"][0], kept_pos)               # original positions, in order
    assert hidden.shape[1] == len(ids) - n_drop
    assert cache.layers[K].keys.shape[2] == len(ids)           # layers <= K keep every key
    assert cache.layers[K + 1].keys.shape[2] == len(ids) - n_drop

    # layers > K by hand on the kept tokens only
    h = captured["out"][:, kept_pos]
    pos = kept_pos[None]
    rope = lm.model.rotary_emb(h, position_ids=pos)
    mask = attention_mask_4d(torch.ones(1, len(kept_pos), dtype=torch.long), len(kept_pos))
    with torch.no_grad():
        for layer in lm.model.layers[K + 1:]:
            h = layer(h, attention_mask=mask, position_embeddings=rope, position_ids=pos)
    expected = engine.head(lm.model.norm(h)[:, -1])
    assert torch.allclose(engine.next_token_logits([p], FASTV), expected, atol=1e-5)


def test_fastv_changes_logits_and_generate_runs(engine, images):
    ps = prompts(engine, images)
    plain = engine.next_token_logits(ps)
    pruned = engine.next_token_logits(ps, FASTV)
    assert not torch.allclose(plain, pruned, atol=1e-3)
    tokens, logits = engine.generate(ps, FASTV, max_new_tokens=5, stop_at_eos=False,
                                     return_logits=True)
    assert all(len(t) == 5 for t in tokens)
    assert torch.allclose(torch.stack([l[0] for l in logits]), pruned)


@pytest.mark.parametrize("settings", [FASTV, S(fastv_layer=1, fastv_ratio=0.3, pool="avg"),
                                      S(fastv_layer=0, fastv_ratio=0.7, skip_lm_blocks=(2,))])
def test_fastv_batched_equals_one_at_a_time(engine, big, images, settings):
    eng = big if settings.pool else engine
    ps = prompts(eng, images, settings)
    assert len({p.image_tokens for p in ps}) > 1          # rows drop different counts
    batched = eng.next_token_logits(ps, settings)
    tok_b, log_b = eng.generate(ps, settings, max_new_tokens=5, stop_at_eos=False,
                                return_logits=True)
    for i, p in enumerate(ps):
        assert torch.allclose(batched[i], eng.next_token_logits([p], settings)[0], atol=1e-4)
        tok_a, log_a = eng.generate([p], settings, max_new_tokens=5, stop_at_eos=False,
                                    return_logits=True)
        assert tok_a[0] == tok_b[i]
        assert torch.allclose(log_a[0], log_b[i], atol=1e-4)


@torch.inference_mode()
def test_fastv_decode_caches_per_layer_and_repeats_for_choices(engine, images):
    ps = prompts(engine, images[:2])
    hidden, mask, cache = engine.prefill(ps, FASTV)
    T = mask.shape[1]
    kept = cache.kept_mask.shape[1]
    assert isinstance(cache, FastVCache) and kept < T
    token = engine.head(hidden[:, -1]).argmax(-1)[:, None]
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    step, cache = decode_step(engine.model, token, mask, mask.sum(-1, keepdim=True) - 1,
                              cache, FASTV)
    assert cache.layers[0].keys.shape[2] == T + 1            # layer K = 0 keeps every key
    assert cache.layers[1].keys.shape[2] == kept + 1 == cache.layers[2].keys.shape[2]
    # the cloze scorer repeats the cache per choice: the kept-key mask must follow
    single = copy.deepcopy(cache)
    cache.batch_repeat_interleave(2)
    assert cache.kept_mask.shape[0] == 4
    token = engine.head(step[:, -1]).argmax(-1)[:, None]
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    alone, _ = decode_step(engine.model, token, mask, mask.sum(-1, keepdim=True) - 1, single,
                           FASTV)
    mask = mask.repeat_interleave(2, 0)
    twice, _ = decode_step(engine.model, token.repeat_interleave(2, 0), mask,
                           mask.sum(-1, keepdim=True) - 1, cache, FASTV)
    assert torch.allclose(twice[0::2], alone, atol=1e-4)
    assert torch.equal(twice[0::2], twice[1::2])


def test_cloze_with_fastv_batched_equals_one_at_a_time(engine, images):
    from nanovlm_lite.evaluate.mcq import choice_log_likelihoods
    ps = prompts(engine, images)
    choices = [["a frisbee", "a kite", "an umbrella"]] * len(ps)
    batched = choice_log_likelihoods(engine, ps, choices, FASTV)
    plain = choice_log_likelihoods(engine, ps, choices, S())
    assert batched != plain
    for i, p in enumerate(ps):
        alone = choice_log_likelihoods(engine, [p], choices[:1], FASTV)[0]
        assert [n for _, n in alone] == [n for _, n in batched[i]]
        assert all(abs(a - b) < 1e-4 for (a, _), (b, _) in zip(alone, batched[i]))


def test_fastv_with_nothing_to_drop_is_bit_identical(engine, images):
    p = engine.prepare(*images[3])                         # 20 image tokens * 0.01 -> 0
    settings = S(fastv_layer=0, fastv_ratio=0.01)
    assert torch.equal(engine.next_token_logits([p], settings), engine.next_token_logits([p]))


def test_fastv_after_a_skipped_block_is_refused(engine, images):
    p = engine.prepare(*images[3])
    with pytest.raises(SettingsError, match="skip_lm_blocks"):
        engine.next_token_logits([p], S(fastv_layer=1, fastv_ratio=0.5, skip_lm_blocks=(1,)))


def fastv_score_flops(cfg, keys):
    """FastV's ranking: the last position's query (2*d*d_q) and its scores (2*keys*d_q)."""
    dq = cfg.lm_n_heads * cfg.lm_head_dim
    return 2 * cfg.lm_hidden_dim * dq + 2 * keys * dq


def _llama_layer_flops(cfg, q_len, k_len):
    d, hd = cfg.lm_hidden_dim, cfg.lm_head_dim
    dq, dkv = cfg.lm_n_heads * hd, cfg.lm_n_kv_heads * hd
    linear = 2 * q_len * (d * dq + 2 * d * dkv + dq * d + 3 * d * cfg.lm_inter_dim)
    return linear + 4 * q_len * k_len * dq               # SDPA: q k^T and p v, dense


def test_fastv_flops_are_what_the_kept_tokens_cost(engine, images):
    """Prefill FLOPs with FastV = layers <= K at T tokens + ranking + layers > K at T'."""
    cfg = engine.cfg
    p = engine.prepare(*images[0])
    T = p.sequence_length
    n_drop = fastv_dropped(p.image_tokens, FASTV.fastv_ratio)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        engine.prefill([p], FASTV)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as plain:
        engine.prefill([p])
    vision = plain.get_total_flops() - cfg.lm_n_blocks * _llama_layer_flops(cfg, T, T)
    K, Tk = FASTV.fastv_layer, T - n_drop
    expected = (vision + (K + 1) * _llama_layer_flops(cfg, T, T)
                + fastv_score_flops(cfg, T)
                + (cfg.lm_n_blocks - K - 1) * _llama_layer_flops(cfg, Tk, Tk))
    assert counter.get_total_flops() == expected


def test_fastv_runs_on_meta_with_real_image_positions(engine):
    """FLOP counting runs the LM on the meta device: FastV then needs only where the image
    tokens are, and spends what the kept tokens cost."""
    from nanovlm_lite.lm import run_lm
    cfg = engine.cfg
    meta = build_model(cfg, "meta")
    T, n_image = 30, 20
    is_image = torch.zeros(1, T, dtype=torch.bool)
    is_image[0, 3:3 + n_image] = True
    embeds = torch.empty(1, T, cfg.lm_hidden_dim, device="meta")
    mask = torch.ones(1, T, dtype=torch.long, device="meta")
    positions = torch.arange(T, device="meta")[None]
    with FlopCounterMode(display=False) as counter:
        hidden, cache = run_lm(meta.lm, embeds, mask, positions, FASTV, image_token_mask=is_image)
    Tk = T - fastv_dropped(n_image, FASTV.fastv_ratio)
    assert hidden.shape == (1, Tk, cfg.lm_hidden_dim)
    expected = (_llama_layer_flops(cfg, T, T) + 2 * _llama_layer_flops(cfg, Tk, Tk)
                + fastv_score_flops(cfg, T))
    assert counter.get_total_flops() == expected
