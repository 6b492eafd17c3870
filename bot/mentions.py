"""The one rule that keeps text from pinging anyone on Discord, applied wherever text may reach a channel:
generated drafts, verified answers and quotes, and everything the Discord renderer shows."""

from __future__ import annotations

import re

ZWSP = "\u200b"
_AT = re.compile(r"@(?!\u200b)")  # every '@': @everyone, @here, <@id>, <@!id>, <@&role>, and anything new
_CHANNEL = re.compile(r"<#(?!\u200b)")  # <#channel> links


def neutralise_mentions(text: str) -> str:
    """Every mention shown but inert (a zero-width space after each '@' and each '<#'); idempotent, and removing
    the zero-width spaces gives the text back."""
    return _CHANNEL.sub("<#" + ZWSP, _AT.sub("@" + ZWSP, text))
