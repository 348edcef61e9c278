"""Errors that are the user's input, not our bug: the CLI prints their message, no trace."""
from .data.aokvqa import DatasetError
from .hub import HubUnreachableError
from .model.checkpoint import CheckpointError
from .model.config import ConfigError
from .parity import ParityError
from .settings import SettingsError


class UserError(Exception):
    pass


class InputError(UserError, ValueError):
    """A file or argument given on the command line is unusable (unreadable image, ...)."""


# every error type whose message is written for the user
USER_ERRORS = (UserError, DatasetError, HubUnreachableError, CheckpointError, ConfigError,
               SettingsError, ParityError, FileNotFoundError)


def format_user_error(e: BaseException) -> str:
    return str(e)
