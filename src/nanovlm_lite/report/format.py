"""How numbers are written in the summary, the plot and the report page."""
from __future__ import annotations

import html
import math

UNITS = (("PFLOPs", 1e3), ("TFLOPs", 1.0), ("GFLOPs", 1e-3), ("MFLOPs", 1e-6), ("kFLOPs", 1e-9))


def flops_unit(tflops) -> tuple[str, float]:
    """(unit, TFLOPs per unit): the largest unit in which the most expensive point costs
    at least 0.1, so the demo's 1.3e-4 TFLOPs reads 0.13 GFLOPs and the real study's
    3.46 TFLOPs stays in TFLOPs."""
    values = [v for v in tflops if v is not None and not _isnan(v) and v > 0]
    top = max(values, default=1.0)
    for name, scale in UNITS:
        if top / scale >= 0.1:
            return name, scale
    return UNITS[-1]


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def missing(v) -> bool:
    return v is None or _isnan(v)


def pct(v, digits: int = 1) -> str:
    return "-" if missing(v) else f"{100 * v:.{digits}f}%"


def interval(low, high, digits: int = 1) -> str:
    """[low, high] in percent, e.g. "[76.5, 80.6]"."""
    if missing(low) or missing(high):
        return "-"
    return f"[{100 * low:.{digits}f}, {100 * high:.{digits}f}]"


def points_diff(v, digits: int = 1) -> str:
    """A difference of accuracies in percentage points, signed: "+1.2" / "-0.4"."""
    return "-" if missing(v) else f"{100 * v:+.{digits}f}"


def p_value(p) -> str:
    if missing(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def escape(v) -> str:
    """A value as HTML text (None as empty)."""
    return html.escape("" if v is None else str(v))


def is_true(column):
    """A pandas column of flags read back from CSV: True, or "True" read as text."""
    return column.astype(str).str.lower().eq("true")
