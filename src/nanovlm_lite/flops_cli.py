"""`nanovlm-lite flops`: one question's FLOPs for a point, or for every point of a study
(checked whole against the model first: study_check.py). The counting is flops_profile.py's;
this module only reads the command line and prints, so the pipeline's flops rule, which
imports flops_profile, does not depend on the study check or the training code."""
from __future__ import annotations

import json
from pathlib import Path

from .flops import COMPONENTS
from .flops_profile import _model_config, count_question
from .model.config import VLMConfig


def _parse_size(text: str) -> tuple[int, int]:
    from .errors import InputError
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--image-size {text!r}: expected WxH, e.g. 640x480") from None
    if w < 1 or h < 1:
        raise InputError(f"--image-size {text!r}: both sides must be positive")
    return w, h


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
