"""A Hugging Face hub cache laid out as huggingface_hub writes it, so the pipeline's own
downloads (hf_hub_download, snapshot_download) find repos in it with HF_HUB_OFFLINE=1:

    <cache>/models--ORG--NAME/blobs/<sha256>          the file contents
    <cache>/models--ORG--NAME/snapshots/<REV>/<path>  relative symlinks to the blobs
    <cache>/models--ORG--NAME/refs/main               REV
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_repo(cache, repo_id: str, files: dict, repo_type: str = "model",
             revision: str | None = None) -> Path:
    """Store `files` (path in the repo -> bytes or a local file to read) as `repo_id`'s
    snapshot at `revision` (default: a hash of the contents) and point refs/main at it.
    Returns the snapshot folder."""
    contents = {name: (Path(v).read_bytes() if isinstance(v, (str, os.PathLike)) else v)
                for name, v in files.items()}
    if revision is None:
        digest = hashlib.sha1()
        for name in sorted(contents):
            digest.update(name.encode() + hashlib.sha1(contents[name]).digest())
        revision = digest.hexdigest()
    org, name = repo_id.split("/")
    root = Path(cache) / f"{repo_type}s--{org}--{name}"
    snapshot = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for path, data in contents.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snapshot
