"""Outputs readable like any other file, though written through a temporary file.

`tempfile.mkstemp` (and safetensors' writer) create files with mode 0600, so a parquet or
checkpoint moved into place from one would be readable by its owner only; on a shared
cluster the rest of the group could not read the study's data or fine-tuned weights.
"""
from __future__ import annotations

import os


def readable(path) -> None:
    """Give `path` the mode a plain `open(path, "w")` would have: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
