"""The one error type whose message is safe to show a user."""


class NewsbotError(Exception):
    """An expected failure; ``str(err)`` is a one-line, user-safe message that names the thing and the fix."""
