"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Something the user can fix (a missing model, a bad file, no device); str() is one line."""
