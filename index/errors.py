"""The one error type whose message is safe to show a user."""


class NewsbotError(Exception):
    """An expected failure; ``str(err)`` is a one-line, user-safe message that names the thing and the fix."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
