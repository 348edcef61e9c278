"""FLOPs put to use: one question's count (analytic, and measured with --measure; the
`flops` command, flops_cli.py, prints it), and a point's FLOP profile from its evaluation
records."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .flops import DEFAULT_CHOICE_TOKENS, price, question_flops
from .flops_measure import measure, meta_engine, rel_diff, synthetic_prompt
from .model.config import VLMConfig
from .plan import plan_for_prompt, plan_for_size, template_tokens, tile_layout
from .settings import PointSettings


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


def _model_config(model: str) -> tuple[VLMConfig, Path | None]:
    """(config, checkpoint directory or None), without loading any weights."""
    from .model.checkpoint import resolve_model
    from .model.config import load_config
    config_path, weights = resolve_model(model)
    directory = config_path.parent if (Path(model).is_dir() or weights is not None) else None
    return load_config(config_path), directory


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
    from .model.widths import config_for_point
    cfg, model_dir = _model_config(str(model))
    cfg = config_for_point(cfg, settings, model_dir)  # a pruned checkpoint's own widths
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
    from .environment import environment
    out["environment"] = environment(runtime=True, device="cpu")  # counted on the CPU
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(out, indent=1))
    return out
