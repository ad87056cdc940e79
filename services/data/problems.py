"""The error a record converter raises: the field (a dotted path such as `messages[2].role`), a
stable reason code and a sentence a person can act on."""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


def type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def article(word: str) -> str:
    """`a user`, `an assistant`."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word
