"""What produced a result: package version, git commit and a hash of the package source,
so every results file can say exactly which code made it (the software and machine around
it: environment.py)."""
from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    from . import __version__
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, text=True,
                                capture_output=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    # versions from the installed metadata, not by importing torch and transformers: the
    # merge and report jobs call this and would pay ~4 CPU-s each for two strings
    return {"nanovlm_lite": __version__, "git_commit": commit,
            "source_sha256": digest.hexdigest()[:16], "torch": metadata.version("torch"),
            "transformers": metadata.version("transformers"),
            "python": platform.python_version()}
