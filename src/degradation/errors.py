"""The one exception type a user can fix: printed as a single line, no traceback."""


class UserError(Exception):
    """Bad input or a missing resource. The entry point prints `error: <message>` and exits 2."""
