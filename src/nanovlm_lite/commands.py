"""The engine's own commands: logits, generate, evaluate (see cli.py for their arguments)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError


def _settings(args):
    from .study import point_settings
    return point_settings(args.config, args.point, args.set)


def _engine(args):
    from . import load
    return load(args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
                revision=args.revision)


def _open_image(path: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise InputError(f"--image {path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"--image {path}: not a readable image ({e})") from None


def logits(args) -> int:
    settings = _settings(args)
    engine = _engine(args)
    settings.check_against(engine.cfg)
    prompt = engine.prepare(_open_image(args.image), args.text, settings)
    out = engine.next_token_logits([prompt], settings)[0].float().cpu().numpy().astype(np.float32)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, out)
    print(f"wrote {args.out}: {out.shape[0]} logits, sequence length {prompt.sequence_length}, "
          f"{prompt.n_tiles} tiles")
    return 0


def generate(args) -> int:
    settings = _settings(args)
    engine = _engine(args)
    settings.check_against(engine.cfg)
    prompt = engine.prepare(_open_image(args.image), args.text, settings)
    tokens = engine.generate([prompt], settings, max_new_tokens=args.max_new_tokens)[0]
    text = engine.tokenizer.decode(tokens, skip_special_tokens=True)
    if args.json:
        print(json.dumps({"token_ids": tokens, "text": text}))
    else:
        print(text)
    return 0


def evaluate(args) -> int:
    import torch

    from .data.aokvqa import load_questions
    from .evaluate.merge import merge_point
    from .evaluate.run import evaluate_questions
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _settings(args)
    if args.scoring:
        settings = settings.__class__.from_dict({**settings.to_dict(), "scoring": args.scoring})
    if args.prompt:
        settings = settings.__class__.from_dict({**settings.to_dict(), "prompt": args.prompt})
    if args.mode == "da":
        settings = settings.__class__.from_dict({**settings.to_dict(), "direct_answer": True})
    engine = _engine(args)
    settings.check_against(engine.cfg)
    questions = load_questions(args.data, args.max_samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "records.jsonl.partial"
    evaluate_questions(engine, questions, settings, args.batch_size, partial)
    metrics = merge_point([partial], args.data, settings.to_dict(), out, args.point or "cli",
                          max_samples=args.max_samples, model=args.model)
    partial.unlink()
    summary = {k: metrics[k] for k in ("n_questions", "accuracy", "n_unparsed", "n_errors")}
    for key in ("direct_answer_accuracy", "accuracy_by_type", "tflops_per_question"):
        if key in metrics:
            summary[key] = metrics[key]
    print(json.dumps(summary, indent=2))
    return 0
