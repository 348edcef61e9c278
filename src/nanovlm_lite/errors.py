"""Errors that are the user's input, not our bug: the CLI prints their message, no trace.

Every class here, and every class listed in USER_ERRORS, carries a message written for
the user: which file, field, setting or option, what it holds, and what was expected.
"""
import os
import tempfile
from pathlib import Path



class UserError(Exception):
    pass


class InputError(UserError, ValueError):
    """A file or argument given on the command line is unusable (unreadable image, ...)."""


class OutputError(UserError, OSError):
    """An output path cannot be written (a file in the way, no permission, read-only)."""


def __getattr__(name):
    """USER_ERRORS: every error type whose message is written for the user. Built on first
    use, so that a light module raising UserError (evaluate/records.py, read by the merge
    rule) does not import torch and transformers with this one. Errors of modules above
    this one (evaluate's StaleRecordsError, train's TrainingOutputError and
    StateMismatchError) subclass UserError, so this module never imports them."""
    if name != "USER_ERRORS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .data.aokvqa import DatasetError
    from .hub import HubUnreachableError
    from .model.checkpoint import CheckpointError
    from .model.config import ConfigError
    from .model.load import DeviceError
    from .model.prompt import TokenizerError
    from .parity import ParityError
    from .settings import SettingsError
    return (UserError, DatasetError, HubUnreachableError, CheckpointError, ConfigError,
            SettingsError, ParityError, DeviceError, TokenizerError, FileNotFoundError)


def format_user_error(e: BaseException) -> str:
    return str(e)


def check_writable(path, flag: str = "--out", directory: bool = False) -> Path:
    """Checks, before any work starts, that `path` (a file, or with `directory` a folder)
    can be written: creates the missing parent folders and a probe file there, so a
    permission-denied or read-only place, or a file in the way, is named now rather than
    as a trace when the result is saved."""
    path = Path(path).expanduser()
    if directory and path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: exists and is a file; an output directory is expected")
    if not directory and path.is_dir():
        raise OutputError(f"{flag} {path}: is a directory; give a file name")
    folder = path if directory else path.parent
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{flag} {path}: cannot be created: {ancestor} is a file, not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".nanovlm-lite-write-check-")
        os.close(fd)
        os.unlink(probe)
        if not directory and path.exists():
            with open(path, "ab"):
                pass
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot be written ({e.strerror or e}); choose another "
                          f"path or fix its permissions") from None
    return path
