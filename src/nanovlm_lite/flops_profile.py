"""FLOPs put to use: one question's count for the `flops` command (analytic, and measured
with --measure), and a point's FLOP profile from its evaluation records."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .flops import COMPONENTS, DEFAULT_CHOICE_TOKENS, price, question_flops
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
    from .study import point_settings
    width, height = _parse_size(args.image_size)
    if args.text is None and args.text_tokens is None:
        raise InputError("give the question as --text TEXT or its token count as --text-tokens N")
    if args.text_tokens is not None and args.text_tokens < 0:
        raise InputError(f"--text-tokens must be >= 0, got {args.text_tokens}")
    if args.decode_tokens is not None and args.decode_tokens < 0:
        raise InputError(f"--decode-tokens must be >= 0, got {args.decode_tokens}")
    if args.all_points and (args.config is None or args.point is not None):
        raise InputError("--all-points needs --config FILE and no --point")
    from .model.widths import config_for_point
    cfg, model_dir = _model_config(args.model)
    if args.all_points:  # the whole study checked against the model first, every problem named
        from .study_check import check_study_file
        points = check_study_file(args.config, cfg, model_dir, args.set, source=args.model)
    else:
        points = {args.point: point_settings(args.config, args.point, args.set)}
    tokenizer = _tokenizer(cfg, model_dir, getattr(args, "tokenizer", None),
                           required=args.text is not None)
    for name, settings in points.items():
        # a point that prunes --model (the base) is priced at the widths it prunes to
        row = count_question(config_for_point(cfg, settings, model_dir), settings, width,
                             height, text=args.text,
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
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(out, indent=1))
    return out
