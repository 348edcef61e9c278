"""What upstream nanoVLM's own code needs beside our package, and how to install it.

The parity rule runs upstream's code in a subprocess (`parity.python`, default: the
pipeline's interpreter). Upstream imports `torchvision` (its image transforms) and
`einops`, which this package does not. A torchvision wheel is built for one torch release:
an unpinned `pip install torchvision` replaces torch with the newest one (plus a CUDA
stack, several GB). So we pin the release matching the installed torch and install it
with --no-deps, which never touches torch.

    python -m nanovlm_lite.upstream_env            prints the install command
    python -m nanovlm_lite.upstream_env install    runs it (what `make study` does)
"""
from __future__ import annotations

import re
import subprocess
import sys

# What upstream's models/ and data/ import that our dependencies do not bring.
EXTRA_MODULES = ("torchvision", "einops")
# upstream_runner.py prints this, the missing module and the torch version when an import fails
IMPORT_ERROR_MARK = "NANOVLM_LITE_UPSTREAM_IMPORT_ERROR"


def matching_torchvision(torch_version: str) -> str:
    """torchvision's release for a torch release: torch 2.N.P pairs with 0.(N+15).P
    (2.13.0 -> 0.28.0, 2.14.1 -> 0.29.1); a local tag like +cpu is dropped."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", torch_version)
    if not m or m[1] != "2":
        raise ValueError(f"torch {torch_version!r}: only torch 2.x has a known torchvision pairing")
    return f"0.{int(m[2]) + 15}.{m[3] or 0}"


def install_command(python: str, torch_version: str) -> list[str]:
    """pip for `python`: the matching torchvision without its dependencies (torch stays as
    it is), and einops."""
    return [python, "-m", "pip", "install", "--no-deps",
            f"torchvision=={matching_torchvision(torch_version)}", "einops"]


def missing_message(python: str, module: str, torch_version: str | None) -> str:
    """The one line the parity rule fails with when upstream's code cannot import."""
    if not torch_version:  # torch itself, or numpy / PIL before it
        return (f"upstream nanoVLM's code cannot import {module!r} with {python}; install it "
                f"there, or give parity.python an interpreter that has torch, the matching "
                f"torchvision and einops (or `--software-deployment-method conda`)")
    command = " ".join(install_command(python, torch_version))
    return (f"upstream nanoVLM's code cannot import {module!r} with {python} (torch "
            f"{torch_version}); install it there: `{command}`, or give parity.python another "
            f"interpreter (or `--software-deployment-method conda`)")


def parse_import_error(stderr: str) -> tuple[str, str | None] | None:
    """(missing module, torch version or None) from upstream_runner's marker line, if any."""
    for line in stderr.splitlines():
        if line.startswith(IMPORT_ERROR_MARK):
            parts = line.split()
            return parts[1], (parts[2] if len(parts) > 2 and parts[2] != "-" else None)
    return None


def install(python: str = sys.executable, run=subprocess.run) -> int:
    """Install what upstream needs into `python`'s environment, torch untouched."""
    import torch
    command = install_command(python, torch.__version__)
    print(" ".join(command))
    return run(command).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["install"]:
        return install()
    import torch
    print(" ".join(install_command(sys.executable, torch.__version__)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
