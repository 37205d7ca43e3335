"""The one exception type a user can fix, and how any error is said in one line."""

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class UserError(Exception):
    """Bad input or a missing resource. The entry points print `error: <message>` and exit 2."""


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


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
