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


def _with(settings, where: str, **changes):
    """`settings` with command-line options applied (checked, named by `where`)."""
    return settings.__class__.from_dict({**settings.to_dict(), **changes}, where=where)


def _engine(args):
    """The model with its weights; an architecture preset or a bare config.json has none,
    so it is refused here (before any hub call for its tokenizer)."""
    from . import load
    from .model.checkpoint import CheckpointError
    from .model.config import preset_path
    model = Path(str(args.model)).expanduser()
    if not model.is_dir() and (preset_path(str(args.model)) is not None
                               or (model.suffix == ".json" and model.is_file())):
        raise CheckpointError(
            f"--model {args.model}: an architecture without weights; {args.command} needs a "
            f"checkpoint (a directory with config.json + model.safetensors, or a hub id)")
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
    image = _open_image(args.image)
    engine = _engine(args)
    settings.check_against(engine.cfg)
    prompt = engine.prepare(image, args.text, settings)
    out = engine.next_token_logits([prompt], settings)[0].float().cpu().numpy().astype(np.float32)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, out)
    print(f"wrote {args.out}: {out.shape[0]} logits, sequence length {prompt.sequence_length}, "
          f"{prompt.n_tiles} tiles")
    return 0


def generate(args) -> int:
    settings = _settings(args)
    image = _open_image(args.image)
    engine = _engine(args)
    settings.check_against(engine.cfg)
    prompt = engine.prepare(image, args.text, settings)
    tokens = engine.generate([prompt], settings, max_new_tokens=args.max_new_tokens)[0]
    text = engine.tokenizer.decode(tokens, skip_special_tokens=True)
    if args.json:
        print(json.dumps({"token_ids": tokens, "text": text}))
    else:
        print(text)
    return 0


def evaluate(args) -> int:
    """Every input is checked before the model loads: settings, then every row of the
    data; the run resumes a partial left in --out only if the same things made it."""
    import torch

    from .data.aokvqa import load_questions
    from .evaluate.merge import merge_point
    from .evaluate.run import evaluate_questions, record_fingerprint
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = _settings(args)
    if args.scoring:
        settings = _with(settings, f"--scoring {args.scoring}", scoring=args.scoring)
    if args.prompt:
        settings = _with(settings, f"--prompt {args.prompt!r}", prompt=args.prompt)
    if args.mode == "da":
        settings = _with(settings, "--mode da", direct_answer=True)
    questions = load_questions(args.data, args.max_samples)
    engine = _engine(args)
    settings.check_against(engine.cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "records.jsonl.partial"
    evaluate_questions(engine, questions, settings, args.batch_size, partial,
                       fingerprint=record_fingerprint(engine, settings))
    metrics = merge_point([partial], args.data, settings.to_dict(), out, args.point or "cli",
                          max_samples=args.max_samples, model=args.model)
    partial.unlink()
    summary = {k: metrics[k] for k in ("n_questions", "accuracy", "n_unparsed", "n_errors")}
    for key in ("direct_answer_accuracy", "accuracy_by_type", "tflops_per_question"):
        if key in metrics:
            summary[key] = metrics[key]
    print(json.dumps(summary, indent=2))
    return 0
