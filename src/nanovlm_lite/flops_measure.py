"""FLOPs of a question counted by `FlopCounterMode` through the engine's own forward path
(on meta tensors for big models: shapes only), the check on `flops.price`. Same
components and convention as flops.py."""
from __future__ import annotations

import copy
from collections import Counter
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode

from .flops import COMPONENTS
from .model.config import VLMConfig
from .plan import decode_steps
from .settings import PointSettings


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
