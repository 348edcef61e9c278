"""`nanovlm-lite`: the engine outside Snakemake (logits, generate, evaluate, flops, bench,
train, parity). Each command parses its arguments here and calls one package function."""
from __future__ import annotations

import argparse
import sys

from .argtypes import at_least, device, image_size, positive_number, prompt_template


class Parser(argparse.ArgumentParser):
    """argparse with its error as one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


BATCH = at_least(1)
THREADS = at_least(1)


def _model_args(p: argparse.ArgumentParser, model_help: str = "checkpoint directory or hub id"):
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or hub id (overrides the config's)")
    p.add_argument("--device", default="cpu", type=device, help="cpu, cuda, cuda:1, mps or auto")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: float32 on CPU, bfloat16 on CUDA")


def _point_args(p: argparse.ArgumentParser):
    p.add_argument("--config", default=None, help="a study config (YAML) whose point to use")
    p.add_argument("--point", default=None, help="the point's name in --config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a point setting (YAML value), e.g. --set global_only=true; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nanovlm-lite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("logits", help="next-token logits at the last prompt position, as .npy")
    _model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--out", required=True, help="FILE.npy: float32 logits over the vocabulary")
    _point_args(p)

    p = sub.add_parser("generate", help="greedy continuation of one image + text")
    _model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--max-new-tokens", type=at_least(1), default=20)
    p.add_argument("--json", action="store_true", help="print token ids and text as JSON")
    _point_args(p)

    p = sub.add_parser("evaluate", help="score an A-OKVQA-schema parquet")
    _model_args(p)
    p.add_argument("--data", required=True, help="parquet in the A-OKVQA schema")
    p.add_argument("--mode", choices=["mcq", "da"], default="mcq")
    p.add_argument("--scoring", choices=["letter", "cloze", "generate"], default=None,
                   help="MCQ scoring (default: the point's, else letter)")
    p.add_argument("--prompt", default=None, type=prompt_template,
                   help="prompt template name or a literal template with {question}")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--max-samples", type=at_least(1, " (0 selects no questions; omit it for all)"),
                   default=None, help="only the first N questions")
    p.add_argument("--batch-size", type=BATCH, default=8)
    p.add_argument("--threads", type=THREADS, default=None)
    _point_args(p)

    p = sub.add_parser("flops", help="analytic (and measured) FLOPs of one question")
    p.add_argument("--model", required=True, help="checkpoint directory, preset (nanovlm-460m) or config.json")
    p.add_argument("--image-size", default="640x480", type=image_size, help="WxH")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--text", default=None)
    text.add_argument("--text-tokens", type=at_least(0), default=None, help="text tokens besides the image tokens")
    p.add_argument("--decode-tokens", type=at_least(0), default=None,
                   help="tokens generated (default: the point's max_new_tokens when it scores by "
                        "generating, else 0)")
    p.add_argument("--measure", action="store_true", help="also count with FlopCounterMode (meta tensors)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all-points", action="store_true", help="every point of --config, one JSON per line")
    p.add_argument("--tokenizer", default=None)
    _point_args(p)

    p = sub.add_parser("bench", help="questions per second, batched vs the seed's loop")
    p.add_argument("--model", required=True)
    p.add_argument("--config", default=None)
    p.add_argument("--point", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch-size", type=BATCH, default=8)
    p.add_argument("--questions", type=at_least(1), default=16)
    p.add_argument("--device", default="cpu", type=device, help="cpu, cuda, cuda:1, mps or auto")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--random", action="store_true", help="random weights (speed does not depend on them)")
    p.add_argument("--baseline", action="store_true", help="also run the seed's one-at-a-time generate loop")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=THREADS, default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("parity", help="our engine vs upstream nanoVLM's code on a checkpoint")
    p.add_argument("--upstream", required=True, help="a clone of huggingface/nanoVLM")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="parquet in the A-OKVQA schema")
    p.add_argument("--out", required=True, help="report JSON")
    p.add_argument("--samples", type=at_least(1), default=4)
    p.add_argument("--tolerance", type=positive_number, default=1e-3)

    from .train.cli import add_train_parser
    add_train_parser(sub)
    return parser


# commands that write --out, and whether it is a directory: checked before any work
OUTPUTS = {"logits": False, "evaluate": True, "parity": False, "train": True}


def main(argv: list[str] | None = None) -> int:
    from .errors import USER_ERRORS, check_writable, format_user_error
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its one line (or --help): an exit code
        return e.code
    try:
        if args.command in OUTPUTS:
            check_writable(args.out, "--out", directory=OUTPUTS[args.command])
        if args.command in ("logits", "generate", "evaluate"):
            from . import commands
            return getattr(commands, args.command)(args) or 0
        if args.command == "flops":
            from .flops_cli import flops_command
            return flops_command(args) or 0
        if args.command == "bench":
            from .bench import bench_command
            return bench_command(args) or 0
        if args.command == "parity":
            from .parity import parity_command
            return parity_command(args) or 0
        if args.command == "train":
            from .train.cli import train_command
            return train_command(args) or 0
    except USER_ERRORS as e:
        print(f"nanovlm-lite {args.command}: {format_user_error(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
