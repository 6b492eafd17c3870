"""Prompt and message templates, stored as files beside this module and loaded by name."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"


@cache
def load(name: str) -> str:
    """The text of template ``name`` (file ``templates/<name>.txt``)."""
    path = TEMPLATES / f"{name}.txt"
    if not path.is_file():
        raise KeyError(f"no prompt template named {name!r} in {TEMPLATES}")
    return path.read_text(encoding="utf-8").strip()


def render(name: str, **values: object) -> str:
    """Template ``name`` with ``$placeholders`` filled in; a missing value is an error."""
    return Template(load(name)).substitute({k: str(v) for k, v in values.items()})

