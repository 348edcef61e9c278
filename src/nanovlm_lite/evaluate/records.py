"""Records files: read a (possibly interrupted) records JSONL, write one atomically, set a
stale one aside, and say in words why a partial was made otherwise. Light on purpose (no
torch): the merge rule reads shards with it in every point's job."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError


class StaleRecordsError(UserError, ValueError):
    """Finished records that were made by other settings, model, data or code."""


def fingerprint_difference(old: dict | None, new: dict) -> str | None:
    """None when `old` made the same records as `new` would; else what differs, in words."""
    if old is None:
        return "an older nanovlm-lite (no fingerprint)"
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "settings" and isinstance(a, dict) and isinstance(b, dict):
            changed = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                       if a.get(k) != b.get(k)]
            parts.append(f"other settings ({', '.join(changed)})")
        else:
            parts.append({"model": "another model", "prompt": "another prompt text", "code": "other code",
                          "dtype": f"dtype {a} (now {b})"}.get(key, f"another {key}"))
    return "; ".join(parts) or None


def stale_name(path: Path) -> Path:
    """`path.stale`, or .stale.1, .stale.2, ... when older ones exist (never overwritten)."""
    path = Path(path)
    target, n = path.with_name(path.name + ".stale"), 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.stale.{n}")
    return target


def set_aside(path: Path) -> Path:
    """Rename `path` to its next free `.stale` name."""
    target = stale_name(path)
    os.replace(path, target)
    return target


def write_records(path: Path, records: list[dict], fingerprint: dict | None = None,
                  environment: dict | None = None) -> Path:
    """A records JSONL written atomically, the fingerprint (if any) as its first line, with
    the environment that made the records beside it (not part of the fingerprint: another
    thread count or machine does not make records stale)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    header = {"fingerprint": fingerprint}
    if environment is not None:
        header["environment"] = environment
    lines = [json.dumps(header)] if fingerprint is not None else []
    tmp.write_text("".join(line + "\n" for line in lines + [json.dumps(r) for r in records]))
    os.replace(tmp, path)
    return path


def read_partial(path: Path) -> tuple[dict | None, list[dict]]:
    """(fingerprint or None, records) of a (possibly interrupted) records JSONL; a torn
    last line is dropped."""
    fingerprint, records = None, []
    if not Path(path).exists():
        return fingerprint, records
    for n, line in enumerate(Path(path).read_text().splitlines()):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            break
        if n == 0 and "fingerprint" in item and "question_id" not in item:
            fingerprint = item["fingerprint"]
        else:
            records.append(item)
    return fingerprint, records


def read_environment(path: Path) -> dict | None:
    """The environment block in a finished shard's header line (write_records puts it
    there); None for a file without one."""
    with open(path) as f:
        first = f.readline()
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        return None
    return header.get("environment") if isinstance(header, dict) else None


def read_records(path: Path) -> list[dict]:
    """Records of a (possibly interrupted) JSONL, without its fingerprint line."""
    return read_partial(path)[1]


