"""The software and machine a result was made on: the `environment` block of every
metrics.json, training.json and flops.json (docs/environment.md).

Package versions come from the installed distributions' metadata and the CPU name from
/proc/cpuinfo, so building the block imports neither torch nor transformers (merge and the
report rules stay light). What only torch knows (its CPU capability, its thread count, a
GPU's name) is added by the jobs that run the model and have torch loaded anyway
(`runtime=True`); merge carries the evaluate shards' block into metrics.json.
"""
from __future__ import annotations

import functools
import hashlib
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

# The distributions whose versions can move a number (the issue-21 list).
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pillow", "safetensors")
# Where `make venv` keeps a copy of the lock it installed the venv from.
LOCK_COPY = "nanovlm-lite-lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def normalize(name: str) -> str:
    """PEP 503 name: `Pillow`, `pillow` and `PILLOW` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    """{normalized name: version} of a pip requirements lock (`name==version \\` lines)."""
    pins = {}
    for line in text.splitlines():
        m = PIN.match(line.strip())
        if m:
            pins[normalize(m[1])] = m[2]
    return pins


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def lock_path(prefix: str | None = None) -> Path:
    """The copy of the lock this environment was installed from (`make venv` writes it)."""
    return Path(prefix or sys.prefix) / LOCK_COPY


def lock_differences(pins: dict[str, str]) -> dict[str, str | None]:
    """{name: installed version (None if absent)} of the pinned packages installed otherwise."""
    found = {name: installed_version(name) for name in pins}
    return {name: version for name, version in found.items() if version != pins[name]}


@functools.lru_cache(maxsize=1)
def lock_state() -> dict:
    """The lock's sha256 and the installed distributions that differ from it (name:
    installed version, None if absent); sha256 None when the environment was not made
    from a lock by `make venv`."""
    path = lock_path()
    if not path.is_file():
        return {"lock_sha256": None, "lock_differs": None}
    data = path.read_bytes()
    return {"lock_sha256": hashlib.sha256(data).hexdigest(),
            "lock_differs": lock_differences(lock_pins(data.decode()))}


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_runtime(device=None) -> dict:
    """What torch itself reports: the device (and a GPU's name), its CPU kernels' capability
    (AVX2, AVX512, ...) and intra-op thread count. Imports torch: call it from the jobs
    that run the model."""
    import torch
    device = torch.device(device if device not in (None, "auto") else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    out = {"device": str(device), "gpu": None,
           "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    return out


def environment(runtime: bool = False, device=None) -> dict:
    """The block: python and package versions, the lock's sha256 (and what the installed
    packages do differently), the machine and CPU; with `runtime`, torch's own view
    (`torch_runtime`, which imports torch)."""
    out = {"python": platform.python_version(),
           **{name: installed_version(name) for name in PACKAGES},
           **lock_state(), "machine": platform.machine(), "cpu": cpu_name()}
    if runtime:
        out.update(torch_runtime(device))
    return out


def check(lock: str) -> int:
    """`python -m nanovlm_lite.environment check LOCK` (what `make venv` runs last): 0 when
    every package the lock pins is installed at its pinned version, else 1 and the list."""
    pins = lock_pins(Path(lock).read_text())
    differs = lock_differences(pins)
    digest = hashlib.sha256(Path(lock).read_bytes()).hexdigest()
    if differs:
        for name, found in sorted(differs.items()):
            print(f"{name}: locked {pins[name]}, installed {found}", file=sys.stderr)
        print(f"environment: {len(differs)} of {len(pins)} packages differ from {lock}",
              file=sys.stderr)
        return 1
    print(f"environment: all {len(pins)} packages installed exactly as {lock} pins them "
          f"(sha256 {digest[:16]}), torch {installed_version('torch')}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "check":
        sys.exit("usage: python -m nanovlm_lite.environment check LOCK")
    sys.exit(check(sys.argv[2]))
