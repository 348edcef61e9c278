"""Clone upstream nanoVLM at a pinned commit, for the parity check.

Plain `git` in a subprocess: the clone goes into a temporary sibling directory and is
renamed into place only once the pinned commit is checked out and verified, so an
interrupted clone is never taken for a finished one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

OFFLINE_HINT = ("If the network is the problem: the real study needs it for this step; the "
                "demo study (`snakemake --configfile config/demo.yaml`, or `make demo`) runs "
                "offline.")


class UpstreamError(RuntimeError):
    """The upstream repository could not be cloned or is not at the pinned commit."""


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")  # never hang on a credentials prompt
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise UpstreamError("`git` is not installed or not on PATH; it is needed to clone "
                            "upstream nanoVLM. " + OFFLINE_HINT) from None


def _head(repo: Path) -> str | None:
    """The checked-out commit of `repo`, or None when it is not a git checkout."""
    if not (repo / ".git").exists():
        return None
    proc = _git("rev-parse", "HEAD", cwd=repo)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _git_says(text: str) -> str:
    """All of git's own stderr lines, trimmed: the line that says what failed (e.g.
    `remote: fatal: unable to read <blob>`) is often not the last one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(f"  git: {ln}" for ln in lines) if lines else "  git: (no message)"


def clone_upstream(url: str, commit: str, dest) -> Path:
    """Clone `url` into `dest` and check out `commit`; verify HEAD is exactly `commit`.

    Idempotent: when `dest` already holds `commit`, nothing is done. A `dest` at another
    commit is an error (delete it to re-clone), never silently replaced.
    """
    dest = Path(dest)
    if dest.exists():
        head = _head(dest)
        if head == commit:
            print(f"{dest} already at pinned commit {commit}; nothing to do")
            return dest
        raise UpstreamError(
            f"{dest} exists but is {'at commit ' + head if head else 'not a git checkout'}, "
            f"not the pinned commit {commit}; delete it to clone again")

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        print(f"cloning {url} into {tmp}")
        proc = _git("clone", "--quiet", "--no-checkout", url, str(tmp))
        if proc.returncode != 0:
            raise UpstreamError(f"could not clone {url}:\n{_git_says(proc.stderr)}\n"
                                + OFFLINE_HINT)
        proc = _git("checkout", "--quiet", "--detach", commit, cwd=tmp)
        if proc.returncode != 0:
            raise UpstreamError(f"could not check out the pinned commit {commit} of {url} "
                                f"(not in it, or the clone is incomplete):\n{_git_says(proc.stderr)}")
        head = _head(tmp)
        if head != commit:
            raise UpstreamError(
                f"{url}: HEAD is {head} after checking out {commit!r}, which is not the "
                f"pinned commit; pin the full 40-character commit hash")
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{dest} at {commit}")
    return dest
