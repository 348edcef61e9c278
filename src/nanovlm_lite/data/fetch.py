"""Fetch one A-OKVQA split from the Hugging Face Hub (or a local path) into one parquet file.

The hub repo stores a split as shards like `data/validation-00000-of-00001-<hash>.parquet`.
We download only that split's shards with `snapshot_download` (which also serves them from
the local cache when HF_HUB_OFFLINE=1), concatenate them in name order, check the schema and
row count, and only then move the result into place, so a failed fetch leaves no output.
"""
from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from ..hub import (HubUnreachableError, hub_cache_dir, hub_error_message, hub_offline,
                   is_unreachable_error, unreachable_reason)
from ..files import readable
from .aokvqa import DatasetError, check_parquet


def split_patterns(split: str) -> list[str]:
    """Glob patterns for a split's parquet shards in the common hub layouts."""
    return [f"{split}.parquet", f"*/{split}.parquet",    # train.parquet
            f"{split}-*.parquet", f"*/{split}-*.parquet",  # data/train-00000-of-00002-x.parquet
            f"{split}/*.parquet", f"*/{split}/*.parquet"]  # train/0000.parquet (parquet branch)


def _split_files(root: Path, split: str) -> list[Path]:
    """A split's parquet files under `root`, sorted by relative path (= shard order)."""
    pats = split_patterns(split)
    found = []
    for p in root.rglob("*.parquet"):
        rel = p.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, pat) for pat in pats):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _download(repo_id: str, split: str, revision: str | None) -> Path:
    """The snapshot folder holding the split's shards; HubUnreachableError when offline and uncached."""
    from huggingface_hub import snapshot_download

    what = f"dataset {repo_id!r} (split {split!r}, revision {revision or 'main'})"
    cache = hub_cache_dir()
    try:
        folder = snapshot_download(
            repo_id, repo_type="dataset", revision=revision,
            allow_patterns=split_patterns(split),
            cache_dir=str(cache) if cache else None,
            # read at call time: huggingface_hub only looks at HF_HUB_OFFLINE on import
            local_files_only=hub_offline(),
        )
    except Exception as exc:
        if is_unreachable_error(exc):
            raise HubUnreachableError(hub_error_message(what, unreachable_reason(exc))) from None
        name = type(exc).__name__
        if name in {"RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}:
            raise DatasetError(f"{what}: {name}: the hub has no such dataset or revision, or it "
                               f"needs a login ({str(exc).splitlines()[0]})") from None
        raise
    return Path(folder)


def _concat(files: list[Path], out: Path) -> None:
    """Stream the shards' record batches into one parquet file (memory stays at one batch)."""
    schema = pq.read_schema(files[0])
    with pq.ParquetWriter(out, schema) as writer:
        for f in files:
            pf = pq.ParquetFile(f)
            if not pf.schema_arrow.equals(schema, check_metadata=False):
                raise DatasetError(f"{f}: its columns differ from {files[0].name}'s, so the shards "
                                   f"cannot be concatenated:\n  {pf.schema_arrow}\nvs\n  {schema}")
            for batch in pf.iter_batches():
                writer.write_batch(batch)


def fetch_dataset(repo_id: str, split: str, out_path: str | os.PathLike,
                  revision: str | None = None, expected_rows: int | None = None) -> Path:
    """Write `split` of `repo_id` (hub id, local parquet, or folder of parquets) to `out_path`."""
    out_path = Path(out_path)
    local = Path(repo_id).expanduser()
    if local.is_file():
        files, source = [local], str(local)
    else:
        if local.is_dir():
            root, source = local, str(local)
        else:
            root, source = _download(repo_id, split, revision), f"dataset {repo_id!r}"
        files = _split_files(root, split)
        if not files:
            raise DatasetError(f"{source}: no parquet files for split {split!r} under {root} "
                               f"(looked for {', '.join(split_patterns(split))})")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        _concat(files, tmp)
        try:
            n_rows = check_parquet(tmp)
        except DatasetError as exc:  # name the source, not the temp file
            raise DatasetError(str(exc).replace(str(tmp), f"{source} split {split!r}")) from None
        if expected_rows is not None and n_rows != expected_rows:
            raise DatasetError(f"{source} split {split!r}: expected {expected_rows} rows, got {n_rows} "
                               f"(from {len(files)} file(s)); wrong split, revision or a partial download?")
        readable(tmp)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path
