"""FLOPs of a question, two independent ways: an analytic model that prices a `CostPlan`,
and `FlopCounterMode` through the engine's own forward path.

Convention: 2 FLOPs per multiply-accumulate; matmuls, linears, convolutions and attention
count, nothing else (norms, softmax, activations, RoPE, embedding lookups, pooling means
and maxima are 0). Causal attention is counted DENSE: every query against every key of
its block, masked or not, because that is what the kernels compute and what
FlopCounterMode counts. Padding of a batch is not counted: a question's cost is what it
costs alone (batch size 1).

Per component, with D the ViT width, I its MLP width, N patches per tile, p the patch,
s the pixel-shuffle factor, d the LM width, d_q = heads * head_dim, d_kv = kv_heads *
head_dim, I_lm the LM's MLP width, V the vocabulary:
- vision, per tile:      2*N*(3*p*p)*D + sum over blocks of (8*T*D^2 + 4*T^2*D + 4*T*D*I),
                         T = the tokens the block runs on (N; fewer under vit_merge:
                         N - r from its start block, vit_hourglass: N / f^2 from block k)
- projector, per tile:   2 * T * (D*s*s) * d          (T = tokens after pixel shuffle)
- reduce:                select attention: 2*N^2*D per tile (the last block's q @ k^T);
                         vit_merge: 2*N_src*N_dst*D per tile and merging block (matching);
                         pool learned: reduce.learned_pool.learned_pool_flops per tile;
                         avg / max pooling, norm and random selection: 0
- lm_prefill, per block that runs, on the S_b tokens it runs on:
      S_b * 2*(d*d_q + 2*d*d_kv + d_q*d + 3*d*I_lm)  +  4 * S_b * S_b * d_q
  plus FastV's ranking at block K: 2*d*d_q (the last query) + 2*S_K*d_q (its scores)
- lm_head:               2 * d * V per position whose logits are computed
- decode step t (0-based) with a KV cache: per block, the linears for 1 token + 4 *
  (C_b + t + 1) * d_q attention (C_b = the block's cached keys), + 2*d*V for the head.
  `decode_per_token` is step 0 (cache of S tokens).
- cloze (`lm_continuation`): the prompt is the shared prefix, priced once; each choice
  of n_c tokens then runs as a continuation of the cached prefix: per block the linears
  for n_c tokens + 4 * n_c * (C_b + n_c) * d_q; the head runs at the last prefix
  position once and at the first n_c - 1 positions of each choice (the positions that
  predict a choice token).
`total` is all of it; generating N tokens costs prefill + head + (N - 1) decode steps.
"""
from __future__ import annotations

import copy
import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model.config import VLMConfig
from .plan import (CostPlan, decode_steps, make_plan, plan_for_prompt, plan_for_record,
                   plan_for_size, template_tokens, tile_layout)
from .settings import PointSettings

COMPONENTS = ("vision", "projector", "reduce", "lm_prefill", "lm_continuation", "lm_head",
              "decode")
# the CLI's cloze what-if: four choices of this many tokens (A-OKVQA choices are 1-3 words)
DEFAULT_CHOICE_TOKENS = (3, 3, 3, 3)


# --------------------------------------------------------------------------- analytic
def vit_tile_flops(cfg: VLMConfig, patches: int, blocks: int, block_tokens=()) -> int:
    """One tile through the patch embedding and `blocks` ViT blocks; `block_tokens`: the
    tokens each block runs on (vit_merge / vit_hourglass; empty: every block on all N)."""
    D, I, p = cfg.vit_hidden_dim, cfg.vit_inter_dim, cfg.vit_patch_size
    patch_embed = 2 * patches * (3 * p * p) * D
    tokens = tuple(block_tokens) or (patches,) * blocks
    if len(tokens) != blocks:
        raise ValueError(f"{len(tokens)} block token counts for {blocks} ViT blocks")
    return patch_embed + sum(8 * t * D * D + 4 * t * t * D + 4 * t * D * I for t in tokens)


def vit_match_flops(cfg: VLMConfig, plan: CostPlan) -> int:
    """vit_merge's matching: per tile and merging block, sources x destinations cosine
    similarities of D-wide tokens (the normalising is not a FLOP)."""
    sources, destinations = plan.vit_match
    return plan.n_tiles * plan.vit_match_blocks * 2 * sources * destinations * cfg.vit_hidden_dim


def projector_tile_flops(cfg: VLMConfig, tokens: int) -> int:
    s = cfg.mp_pixel_shuffle_factor
    return 2 * tokens * (cfg.vit_hidden_dim * s * s) * cfg.lm_hidden_dim


def _lm_dims(cfg: VLMConfig) -> tuple[int, int, int]:
    hd = cfg.lm_head_dim
    return cfg.lm_hidden_dim, cfg.lm_n_heads * hd, cfg.lm_n_kv_heads * hd


def lm_linear_flops(cfg: VLMConfig, tokens: int) -> int:
    """One LM block's q, k, v, o projections and gated MLP for `tokens` tokens."""
    d, dq, dkv = _lm_dims(cfg)
    return tokens * 2 * (d * dq + 2 * d * dkv + dq * d + 3 * d * cfg.lm_inter_dim)


def attention_flops(cfg: VLMConfig, queries: int, keys: int) -> int:
    """One LM block's q @ k^T and attn @ v, dense, over all query heads (GQA repeats k, v)."""
    return 4 * queries * keys * _lm_dims(cfg)[1]


def head_flops(cfg: VLMConfig, positions: int) -> int:
    return 2 * cfg.lm_hidden_dim * cfg.lm_vocab_size * positions


def fastv_score_flops(cfg: VLMConfig, keys: int) -> int:
    """FastV's ranking at block K: the last position's query and its scores over K's keys."""
    d, dq, _ = _lm_dims(cfg)
    return 2 * d * dq + 2 * keys * dq


def reduce_flops(cfg: VLMConfig, plan: CostPlan) -> int:
    """The token-reduction knobs' own compute (pooling means and maxima are not FLOPs)."""
    if plan.vit_match_blocks:
        return vit_match_flops(cfg, plan)
    if plan.select == "attention":
        return plan.n_tiles * 2 * plan.patches_per_tile ** 2 * cfg.vit_hidden_dim
    if plan.pool == "learned":
        from .reduce.learned_pool import learned_pool_flops
        return plan.n_tiles * learned_pool_flops(plan.projected_tokens_per_tile,
                                                 cfg.lm_hidden_dim, plan.pool_factor)
    return 0


def decode_step_flops(cfg: VLMConfig, plan: CostPlan, step: int = 0) -> int:
    """Decode step `step` (0-based): one token through the blocks that run, attending to
    each block's cache plus the tokens generated so far, then the head."""
    lm = sum(lm_linear_flops(cfg, 1) + attention_flops(cfg, 1, cached + step + 1)
             for cached in plan.block_lengths)
    return lm + head_flops(cfg, 1)


def price(cfg: VLMConfig, plan: CostPlan) -> dict[str, int]:
    """Integer FLOPs per component of one question (see the module docstring)."""
    vision = plan.n_tiles * vit_tile_flops(cfg, plan.patches_per_tile, plan.vit_blocks,
                                           plan.vit_block_tokens)
    projector = plan.n_tiles * projector_tile_flops(cfg, plan.projected_tokens_per_tile)
    prefill = sum(lm_linear_flops(cfg, n) + attention_flops(cfg, n, n)
                  for n in plan.block_lengths)
    if plan.fastv_layer is not None:
        prefill += fastv_score_flops(cfg, plan.cache_length(plan.fastv_layer))
    continuation = sum(lm_linear_flops(cfg, n) + attention_flops(cfg, n, cached + n)
                       for n in plan.choice_tokens for cached in plan.block_lengths)
    out = {
        "tiles": plan.n_tiles, "image_tokens": plan.image_tokens,
        "sequence_length": plan.sequence_length, "decode_steps": plan.decode_steps,
        "vision": vision, "projector": projector, "reduce": reduce_flops(cfg, plan),
        "lm_prefill": prefill, "lm_continuation": continuation,
        "lm_head": head_flops(cfg, plan.logit_positions),
        "decode": sum(decode_step_flops(cfg, plan, t) for t in range(plan.decode_steps)),
        "decode_per_token": decode_step_flops(cfg, plan, 0),
    }
    out["total"] = sum(out[k] for k in COMPONENTS)
    return out


def generation_flops(cfg: VLMConfig, plan: CostPlan, n_tokens: int) -> int:
    """Total FLOPs of generating `n_tokens` greedy tokens for the plan's question."""
    return price(cfg, replace(plan, decode_steps=decode_steps(n_tokens)))["total"]


def question_flops(cfg: VLMConfig, settings: PointSettings | dict, record: dict) -> dict:
    """Analytic FLOPs of one evaluated question from its record (n_tiles, sequence_length,
    decode_tokens, cloze choice_tokens). `total` is the MCQ answer's cost; a direct answer
    generated besides it (da_sequence_length, da_decode_tokens) is a second prompt with
    the same image, reported as `direct_answer_total` and not part of `total`."""
    if not isinstance(settings, PointSettings):
        settings = PointSettings.from_dict(settings)
    out = price(cfg, plan_for_record(cfg, settings, record))
    if record.get("da_sequence_length"):
        da = make_plan(cfg, replace(settings, scoring="generate"), int(record["n_tiles"]),
                       int(record["da_sequence_length"]), int(record.get("da_decode_tokens") or 0))
        out["direct_answer_total"] = price(cfg, da)["total"]
    return out


# --------------------------------------------------------------------------- measured
class _NoTokenizer:
    """What the engine asks of a tokenizer to run prepared prompts: the padding id."""
    pad_token_id = 0
    eos_token_id = 0


def meta_engine(cfg: VLMConfig, tokenizer=None):
    """An Engine on the meta device: shapes only, no weights, no compute, no memory. Each
    call builds a fresh model (knobs such as pool: learned attach modules to it)."""
    from .engine import Engine
    from .model.load import build_model
    return Engine(build_model(cfg, "meta"), tokenizer or _NoTokenizer())


def synthetic_prompt(cfg: VLMConfig, settings: PointSettings, n_tiles: int,
                     sequence_length: int, grid=None, device: str = "meta"):
    """A Prompt without a tokenizer, laid out like a real one: 3 template tokens, then per
    tile its marker and `<|image|>` slots, then the text and the rest of the template.
    Token ids are placeholders (the cost does not depend on them); tiles are empty
    (`device="meta"`) or zeros."""
    from .engine import Prompt
    from .model.image_processing import ProcessedImage
    from .plan import _tile_tokens
    tile, _, _, kept = _tile_tokens(cfg, settings)
    image_id = cfg.lm_base_vocab_size       # <|image|>; the markers follow it in config order
    ids = [1, 2, 3]
    for t in range(n_tiles):
        ids += [image_id + 1 + min(t, cfg.extra_token_amount - 2)] + [image_id] * kept
    rest = sequence_length - len(ids)
    if rest < 0:
        raise ValueError(f"{n_tiles} tiles of {kept} tokens do not fit {sequence_length} tokens")
    ids += [4 + i % 16 for i in range(rest)]
    make = torch.empty if device == "meta" else torch.zeros
    tiles = make(n_tiles, 3, tile, tile, device=device)
    image = ProcessedImage(tiles, tuple(grid) if grid else (1, 1),
                           n_tiles > 1 or settings.global_only)
    return Prompt(ids, image, [kept] * n_tiles, "")


class _Tally:
    """Splits a FlopCounterMode count by the component whose modules were running: FLOPs
    spent while any module of a component is on the stack are that component's."""

    def __init__(self, model, mode: FlopCounterMode):
        self.mode = mode
        self.group = {}
        for name, root in (("vision", model.vision), ("projector", model.projector),
                           ("lm", model.lm.model), ("head", model.lm.lm_head)):
            for module in root.modules():
                self.group.setdefault(module, name)
        self.depth, self.start, self.flops = Counter(), {}, Counter()
        self.before_lm = None   # Global FLOPs when an LM block was first entered
        self.total = 0

    def enter(self, module, _args):
        name = self.group.get(module)
        if name is None:
            return
        if (name == "lm" and self.before_lm is None
                and not isinstance(module, torch.nn.Embedding)):  # lookups: 0 FLOPs, any time
            self.before_lm = self.mode.get_total_flops()
        if self.depth[name] == 0:
            self.start[name] = self.mode.get_total_flops()
        self.depth[name] += 1

    def exit(self, module, _args, _out):
        name = self.group.get(module)
        if name is None:
            return
        self.depth[name] -= 1
        if self.depth[name] == 0:
            self.flops[name] += self.mode.get_total_flops() - self.start[name]


def _name_modules(mode: FlopCounterMode, model) -> None:
    """Give FlopCounterMode's module hierarchy the model's own names ("NanoVLM.vision...").
    The engine calls submodules directly, so unnamed they would show by class name only."""
    known = getattr(getattr(mode, "mod_tracker", None), "_known_modules", None)
    if known is None:
        return
    for name, module in model.named_modules():
        known[module] = f"NanoVLM.{name}" if name else "NanoVLM"


@contextmanager
def _count(model):
    mode = FlopCounterMode(display=False)
    tally = _Tally(model, mode)
    from torch.nn.modules.module import (register_module_forward_hook,
                                         register_module_forward_pre_hook)
    with mode:
        _name_modules(mode, model)
        handles = [register_module_forward_pre_hook(tally.enter),
                   register_module_forward_hook(tally.exit)]
        try:
            yield tally
        finally:
            for h in handles:
                h.remove()
    tally.total = mode.get_total_flops()
    tally.modules = {name: sum(ops.values()) for name, ops in mode.get_flop_counts().items()}


@contextmanager
def _math_attention():
    """SDPA's math backend: its matmuls are counted (the CPU flash kernel counts 0)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):
        yield


def _prefill(engine, prompts, settings):
    """`engine.prefill`, or on the meta device the same steps with the image-slot mask
    taken from the prompts' token ids (meta tensors hold no values to find the slots in;
    the slots' scatter and FastV's choice of tokens need them). Nothing here is a FLOP."""
    if engine.device.type != "meta":
        return engine.prefill(prompts, settings)
    from .lm import run_lm
    if len(prompts) != 1:
        raise ValueError("meta counting runs one prompt at a time")
    ids, mask, positions = engine._batch_inputs(prompts)
    slots = torch.tensor([prompts[0].input_ids]) == engine.model.image_token_id
    model = engine.model
    image_tokens = engine.image_tokens(prompts, settings)
    embeds = model.lm.model.embed_tokens(ids)
    if image_tokens is not None:
        flat = image_tokens.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        if flat.shape[0] != int(slots.sum()):
            raise ValueError(f"prompt has {int(slots.sum())} <|image|> slots for "
                             f"{flat.shape[0]} image tokens")
        rows, cols = slots.nonzero(as_tuple=True)
        embeds = embeds.clone()
        embeds[rows.to(embeds.device), cols.to(embeds.device)] = flat
    hidden, cache = run_lm(model.lm, embeds, mask, positions, settings, image_token_mask=slots)
    return hidden, mask, cache


@torch.inference_mode()
def measure(engine, prompt, settings: PointSettings, decode_tokens: int = 0,
            choice_tokens=(), modules: bool = False, decode_per_token: bool = True) -> dict:
    """FlopCounterMode's count of one question through the engine's forward path: the
    prefill (`Engine.prefill`), the head at the last position, the cloze choices as
    continuations of the cached prompt (`lm.run_lm` on a copy of the cache repeated per
    choice, as the cloze scorer runs them; choices of equal length share a batch, so no
    padding is counted), and the decode steps (`lm.decode_step` + the head, as
    `Engine.generate` runs them). Same keys as `price`. `decode_per_token` runs one decode
    step for that key even when the question has none (it is then not in `decode`);
    `modules` adds FlopCounterMode's per-module counts of the prefill."""
    from .lm import decode_step, run_lm
    model = engine.model
    out = {}
    with _math_attention():
        with _count(model) as c:
            hidden, mask, cache = _prefill(engine, [prompt], settings)
        vision, projector = c.flops["vision"], c.flops["projector"]
        before_lm = c.total if c.before_lm is None else c.before_lm
        out.update(vision=vision, projector=projector, reduce=before_lm - vision - projector,
                   lm_prefill=c.total - before_lm)
        if modules:
            out["modules"] = c.modules
        with _count(model) as c:
            engine.head(hidden[:, -1])
        head, continuation = c.total, 0
        for n, rows in sorted(Counter(int(n) for n in choice_tokens).items()):
            branch = copy.deepcopy(cache)
            branch.batch_repeat_interleave(rows)
            prefix = mask.repeat_interleave(rows, 0)
            ids = torch.ones((rows, n), dtype=torch.long, device=mask.device)
            positions = prefix.sum(-1, keepdim=True) + torch.arange(n, device=mask.device)[None]
            with _count(model) as c:
                h, _ = run_lm(model.lm, model.lm.model.embed_tokens(ids),
                              torch.cat([prefix, torch.ones_like(ids)], 1), positions,
                              settings, cache=branch)
            continuation += c.total
            if n > 1:   # the head where a choice token is predicted
                with _count(model) as c:
                    engine.head(h[:, : n - 1])
                head += c.total
        out.update(lm_continuation=continuation, lm_head=head)
        steps, decode, first = decode_steps(decode_tokens), 0, None
        token = torch.zeros((1, 1), dtype=torch.long, device=mask.device)
        next_pos = mask.sum(-1)
        for step in range(max(steps, 1) if decode_per_token else steps):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            with _count(model) as c:
                h, cache = decode_step(model, token, mask, next_pos[:, None], cache, settings)
                engine.head(h[:, -1])
            first = c.total if first is None else first
            decode += c.total if step < steps else 0
            next_pos = next_pos + 1
        out.update(decode=decode, decode_per_token=first)
    out["total"] = sum(out[k] for k in COMPONENTS)
    return out


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1)


# ------------------------------------------------------------------ one question, CLI
def count_question(cfg: VLMConfig, settings: PointSettings, width: int, height: int,
                   text: str | None = None, text_tokens: int | None = None,
                   decode_tokens: int | None = None, choice_tokens=None, measure_it: bool = False,
                   tokenizer=None) -> dict:
    """Analytic (and with `measure_it`, measured) FLOPs of one question: an image of
    width x height and either `text` (needs `tokenizer`: the real prompt is built) or
    `text_tokens` tokens of user text. Cloze without `choice_tokens` prices
    DEFAULT_CHOICE_TOKENS; `decode_tokens` None means the point's own budget
    (`max_new_tokens` when it scores by generating, else none)."""
    settings.check_against(cfg)
    if decode_tokens is None:
        decode_tokens = settings.max_new_tokens if settings.scoring == "generate" else 0
    if settings.scoring == "cloze":
        choice_tokens = tuple(choice_tokens or DEFAULT_CHOICE_TOKENS)
    else:
        choice_tokens = ()
    prompt = None
    if text is not None:
        if tokenizer is None:
            raise ValueError("counting a --text needs the tokenizer")
        from PIL import Image
        engine = meta_engine(cfg, tokenizer)
        prompt = engine.prepare(Image.new("RGB", (width, height)), text, settings)
        plan = plan_for_prompt(cfg, settings, prompt, decode_tokens, choice_tokens)
        row = price(cfg, plan)
        row["text_tokens"] = len(tokenizer.encode(text, add_special_tokens=False))
        row["template_tokens"] = template_tokens(cfg, tokenizer)
    else:
        if text_tokens is None:
            raise ValueError("give the text or its token count")
        template = template_tokens(cfg, tokenizer)
        plan = plan_for_size(cfg, settings, width, height, text_tokens, decode_tokens,
                             choice_tokens, template=template)
        row = price(cfg, plan)
        row.update(text_tokens=text_tokens, template_tokens=template)
    row["decode_tokens"] = decode_tokens
    if choice_tokens:
        row["choice_tokens"] = list(choice_tokens)
    if measure_it:
        engine = meta_engine(cfg, tokenizer)
        if prompt is None:
            prompt = synthetic_prompt(cfg, settings, plan.n_tiles, plan.sequence_length, plan.grid)
        measured = measure(engine, prompt, settings, decode_tokens, choice_tokens)
        row.update({f"measured_{k}": v for k, v in measured.items()})
        row["rel_diff"] = rel_diff(row["total"], measured["total"])
    return row


def _parse_size(text: str) -> tuple[int, int]:
    from .errors import InputError
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--image-size {text!r}: expected WxH, e.g. 640x480") from None
    if w < 1 or h < 1:
        raise InputError(f"--image-size {text!r}: both sides must be positive")
    return w, h


def _model_config(model: str) -> tuple[VLMConfig, Path | None]:
    """(config, checkpoint directory or None), without loading any weights."""
    from .model.checkpoint import resolve_model
    from .model.config import load_config
    config_path, weights = resolve_model(model)
    directory = config_path.parent if (Path(model).is_dir() or weights is not None) else None
    return load_config(config_path), directory


def _tokenizer(cfg: VLMConfig, model_dir, override, required: bool):
    """The tokenizer when it is on disk (or `required` for --text: then any source)."""
    from .errors import InputError
    from .model.prompt import build_tokenizer, resolve_tokenizer_source
    source = resolve_tokenizer_source(cfg, model_dir, override)
    if not required and not Path(source).is_dir():
        return None
    try:
        return build_tokenizer(cfg, source)
    except Exception as e:  # unreachable hub, missing files: the user's to fix
        raise InputError(f"--text needs the tokenizer {source!r}, which could not be loaded "
                         f"({type(e).__name__}: {e}); pass --tokenizer DIR, or give the "
                         f"text's token count with --text-tokens N") from None


def _human(row: dict) -> str:
    lines = [f"point: {row['point']}"] if "point" in row else []
    lines.append(f"tiles {row['tiles']}, image tokens {row['image_tokens']}, "
                 f"sequence length {row['sequence_length']}, decode steps {row['decode_steps']}")
    for key in (*COMPONENTS, "decode_per_token", "total"):
        line = f"  {key:<16} {row[key] / 1e12:10.6f} TFLOPs"
        if f"measured_{key}" in row:
            line += f"   measured {row[f'measured_{key}'] / 1e12:10.6f}"
        lines.append(line)
    if "rel_diff" in row:
        lines.append(f"  analytic vs measured total: {row['rel_diff']:.2e} relative")
    return "\n".join(lines)


def flops_command(args) -> int:
    """`nanovlm-lite flops`: one question's FLOPs for a point, or for every point."""
    from .errors import InputError
    from .study import load_points, point_settings
    width, height = _parse_size(args.image_size)
    if args.text is None and args.text_tokens is None:
        raise InputError("give the question as --text TEXT or its token count as --text-tokens N")
    if args.text_tokens is not None and args.text_tokens < 0:
        raise InputError(f"--text-tokens must be >= 0, got {args.text_tokens}")
    if args.decode_tokens is not None and args.decode_tokens < 0:
        raise InputError(f"--decode-tokens must be >= 0, got {args.decode_tokens}")
    if args.all_points:
        if args.config is None or args.point is not None:
            raise InputError("--all-points needs --config FILE and no --point")
        points = load_points(args.config, args.set)
    else:
        points = {args.point: point_settings(args.config, args.point, args.set)}
    cfg, model_dir = _model_config(args.model)
    tokenizer = _tokenizer(cfg, model_dir, getattr(args, "tokenizer", None),
                           required=args.text is not None)
    for name, settings in points.items():
        row = count_question(cfg, settings, width, height, text=args.text,
                             text_tokens=args.text_tokens, decode_tokens=args.decode_tokens,
                             measure_it=args.measure, tokenizer=tokenizer)
        if name is not None:
            row = {"point": name, **row}
        print(json.dumps(row) if args.json else _human(row), flush=True)
    return 0


# ------------------------------------------------------------------ a point's profile
def read_records(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def profile_point(model: str, records_path, settings: dict | PointSettings, out_json,
                  measure_samples: int = 2, threads: int = 1) -> dict:
    """A point's FLOP profile from its evaluation records: the mean analytic TFLOPs per
    question (and per component), checked against FlopCounterMode on `measure_samples`
    questions spread over the cost range (meta tensors at the same tile count and
    sequence length). Writes and returns the JSON."""
    torch.set_num_threads(max(1, int(threads)))
    if not isinstance(settings, PointSettings):
        settings = PointSettings.from_dict(settings)
    cfg, _ = _model_config(str(model))
    settings.check_against(cfg)
    records = read_records(records_path)
    priced = [r for r in records if not r.get("error")]
    questions = []
    for r in priced:
        if r.get("image_size"):
            tiles = tile_layout(cfg, settings, *r["image_size"])[0]
            if tiles != int(r["n_tiles"]):
                raise ValueError(f"question {r.get('question_id')}: the record has "
                                 f"{r['n_tiles']} tiles, a {r['image_size']} image makes {tiles} "
                                 f"at these settings: were the records made with others?")
        questions.append({"question_id": r.get("question_id"),
                          **question_flops(cfg, settings, r)})
    n = len(questions)
    mean = (lambda key: sum(q[key] for q in questions) / n / 1e12) if n else (lambda key: 0.0)
    out = {"n_questions": n, "n_errors": len(records) - n,
           "settings": settings.to_dict(), "model": str(model),
           "tflops_per_question": mean("total"), "vision_tflops": mean("vision"),
           "projector_tflops": mean("projector"), "reduce_tflops": mean("reduce"),
           "lm_tflops": (sum(q[k] for q in questions for k in
                             ("lm_prefill", "lm_continuation", "lm_head", "decode")) / n / 1e12
                         if n else 0.0)}
    order = sorted(range(n), key=lambda i: questions[i]["total"])
    k = min(max(int(measure_samples), 0), n)
    picks = sorted({order[round(j * (n - 1) / (k - 1))] if k > 1 else order[0]
                    for j in range(k)}) if k else []
    sample, start = [], time.perf_counter()
    for i in picks:
        r = priced[i]
        engine = meta_engine(cfg)
        prompt = synthetic_prompt(cfg, settings, int(r["n_tiles"]), int(r["sequence_length"]))
        measured = measure(engine, prompt, settings, int(r.get("decode_tokens") or 0),
                           tuple(r.get("choice_tokens") or ()), decode_per_token=False)
        sample.append({"question_id": r.get("question_id"), "analytic": questions[i]["total"],
                       "measured": measured["total"],
                       "rel_diff": rel_diff(questions[i]["total"], measured["total"])})
    out.update(
        measured_tflops=(sum(s["measured"] for s in sample) / len(sample) / 1e12
                         if sample else None),
        sample_analytic_tflops=(sum(s["analytic"] for s in sample) / len(sample) / 1e12
                                if sample else None),
        max_rel_diff=max((s["rel_diff"] for s in sample), default=None),
        measured_sample=sample, measure_seconds=time.perf_counter() - start,
        questions=questions)
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(out, indent=1))
    return out
