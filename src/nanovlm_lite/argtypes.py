"""Argument types for the command lines: every number and choice is checked when the
command line is read. Apart from cli.py so that subcommands (train/cli.py) use them
without importing the CLI that imports them."""
from __future__ import annotations

import argparse
import math
import re

def at_least(minimum: int, note: str = ""):
    """An integer type refusing values below `minimum` (`note` says what they would mean)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{note}, got {value}")
        return value
    return parse


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def image_size(text: str) -> str:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected WxH with both sides >= 1, e.g. 640x480; got {text!r}")
    return f"{int(m.group(1))}x{int(m.group(2))}"


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps, checked against what this torch build can use."""
    from .model.load import DeviceError, check_device
    try:
        return check_device(text)
    except DeviceError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def prompt_template(text: str) -> str:
    from .evaluate.prompts import check_template
    try:
        check_template(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
