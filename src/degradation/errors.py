"""The one exception type a user can fix, and how any error is said in one line."""

import argparse
import os
import sys

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class UserError(Exception):
    """Bad input or a missing resource. The entry points print `error: <message>` and exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse for our command lines: a bad flag or value is one `error:` line naming it, exit 2 (no usage block)."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} < 1")
    return value


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        return at_least_one(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def comma_list(item_type, what: str):
    """An argparse type: a comma-separated list of `item_type`, refused as a whole with `what` named."""

    def parse(text: str) -> list:
        try:
            items = [item_type(item) for item in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {text!r}") from None
        return items

    return parse


def require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def one_line(error: BaseException, with_type: bool = False) -> str:
    """The first line that says what went wrong; Hydra's and OmegaConf's errors name the key."""
    if isinstance(error, MissingConfigException) and error.options:
        return f"{first_line(error)}; available: {', '.join(error.options)}"
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
            return f"unknown config key '{key}' (add it with +{key}=... only if you mean to extend the config)"
        return f"{first_line(error)} {first_line(cause)}"
    line, name = first_line(error), type(error).__name__
    if with_type:
        return f"{name}: {line}"[:200] if line else name
    return line or name


def exit_with(error: Exception, code: int = 2) -> None:
    """Exit 2 for input the user can fix, 1 for a run that failed; DEGRADATION_TRACEBACK=1 raises instead."""
    if os.environ.get("DEGRADATION_TRACEBACK") == "1":
        raise error
    print(f"error: {one_line(error)}", file=sys.stderr)
    sys.exit(code)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
