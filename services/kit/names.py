"""Resource names, ids, page tokens, filters and ordering as AIP-122/132/158/160 describe them.

Object-store keys are never built from these strings directly: services key objects by
server-made uids. What is parsed here is still checked strictly so that errors name the field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.kit.errors import InvalidArgument

RESOURCE_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
RESOURCE_ID_RULE = "1-63 characters: lower-case letters, digits and hyphens, starting with a letter, not ending with a hyphen"

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_NAME_CHARS = 1024  # no resource name is longer; longer input is refused before it is parsed
MAX_FILTER_CHARS = 2000
MAX_FILTER_TERMS = 20


def quote(value: str, limit: int = 60) -> str:
    """`value` for an error message: quoted, and cut to a short prefix when it is long (errors never
    echo unbounded input)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def check_id(value: str, field: str, *, what: str = "id") -> str:
    """Return `value` if it is a valid resource id, else raise InvalidArgument naming `field`."""
    if not value:
        raise InvalidArgument.field(field, f"{what} is required ({RESOURCE_ID_RULE})")
    if not RESOURCE_ID.match(value):
        raise InvalidArgument.field(field, f"{quote(value)} is not a valid {what} ({RESOURCE_ID_RULE})")
    return value


@dataclass(frozen=True)
class NamePattern:
    """A resource-name template such as `projects/{project}/models/{model}`.

    `checks` maps a variable to a validator (value, field) -> value; variables without one must
    be resource ids.
    """

    template: str
    checks: Mapping[str, Callable[[str, str], str]] | None = None

    def parse(self, name: str, field: str = "name") -> dict[str, str]:
        if not name:
            raise InvalidArgument.field(field, f"is required, in the form {self.template}")
        if len(name) > MAX_NAME_CHARS:
            raise InvalidArgument.field(
                field, f"{quote(name)} is longer than any name ({MAX_NAME_CHARS} characters at most)"
            )
        parts = name.split("/")
        pattern = self.template.split("/")
        if len(parts) != len(pattern):
            raise InvalidArgument.field(field, f"{quote(name)} is not of the form {self.template}")
        values: dict[str, str] = {}
        for part, expected in zip(parts, pattern, strict=True):
            if expected.startswith("{"):
                var = expected[1:-1]
                check = (self.checks or {}).get(var)
                values[var] = check(part, field) if check else _check_segment(part, field, var, name)
            elif part != expected:
                raise InvalidArgument.field(field, f"{quote(name)} is not of the form {self.template}")
        return values

    def format(self, **values: str | int) -> str:
        return self.template.format(**values)


def _check_segment(part: str, field: str, var: str, name: str) -> str:
    if not RESOURCE_ID.match(part):
        raise InvalidArgument.field(
            field, f"{quote(name)}: {var} {quote(part)} is not a valid id ({RESOURCE_ID_RULE})"
        )
    return part


PROJECT = NamePattern("projects/{project}")


def page_size(value: int, field: str = "page_size") -> int:
    """AIP-158: 0 means the default, negative is an error, large values are capped."""
    if value < 0:
        raise InvalidArgument.field(field, f"must not be negative (got {value})")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class PageTokens:
    """Opaque, signed page tokens bound to the request they were made for.

    A token holds the last row's sort key; it is signed with the service's secret and bound to a
    context string (method, parent, filter, order) so a tampered token, or one reused with another
    filter, is refused with INVALID_ARGUMENT.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, body: bytes, context: str) -> bytes:
        return hmac.new(self._secret, context.encode() + b"\0" + body, hashlib.sha256).digest()[:16]

    def encode(self, payload: Mapping[str, Any], context: str) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(self._mac(body, context) + body).decode().rstrip("=")

    def decode(self, token: str, context: str, field: str = "page_token") -> dict[str, Any]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raw = b""
        mac, body = raw[:16], raw[16:]
        if len(mac) != 16 or not hmac.compare_digest(mac, self._mac(body, context)):
            raise InvalidArgument.field(
                field,
                "is not a token this server issued for this request (was it changed, or reused with another filter or order?)",
            )
        return json.loads(body)


_FILTER_TERM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))\s*')


def parse_filter(text: str, allowed: Callable[[str], bool], field: str = "filter") -> list[tuple[str, str]]:
    """Parse `a = "x" AND b.c = y` into [(a, x), (b.c, y)] (the AIP-160 subset we support)."""
    text = text.strip()
    if not text:
        return []
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidArgument.field(field, f"is {len(text)} characters; at most {MAX_FILTER_CHARS}")
    chunks = re.split(r"\s+AND\s+", text)
    if len(chunks) > MAX_FILTER_TERMS:
        raise InvalidArgument.field(field, f"has {len(chunks)} terms; at most {MAX_FILTER_TERMS}")
    terms: list[tuple[str, str]] = []
    for i, chunk in enumerate(chunks):
        match = _FILTER_TERM.fullmatch(chunk)
        if not match:
            raise InvalidArgument.field(
                field,
                f'term {i + 1} ({quote(chunk.strip())}) is not of the form key = "value"; join terms with AND',
            )
        key, quoted, bare = match.groups()
        if not allowed(key):
            raise InvalidArgument.field(field, f"cannot filter on {quote(key)}")
        value = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else bare
        terms.append((key, value))
    return terms


def parse_order_by(text: str, allowed: set[str], default: str, field: str = "order_by") -> tuple[str, bool]:
    """Parse `create_time desc` into ("create_time", True)."""
    parts = text.split()
    if not parts:
        return default, False
    if len(parts) > 2 or parts[0] not in allowed or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
        raise InvalidArgument.field(
            field,
            f"{quote(text)} is not supported; use one of {', '.join(sorted(allowed))}, optionally followed by desc",
        )
    return parts[0], len(parts) == 2 and parts[1] == "desc"


TAG_KEY = re.compile(r"^[a-z][a-z0-9_.\-]{0,62}$")


def check_text(value: str, field: str, limit: int) -> str:
    """A free-text field of at most `limit` characters."""
    if len(value) > limit:
        raise InvalidArgument.field(field, f"is {len(value)} characters; at most {limit} are allowed")
    return value


def check_tags(tags: dict[str, str], field: str) -> dict[str, str]:
    """Key-value tags: at most 64, keys like `task` or `eval.bleu`, values at most 256 characters."""
    if len(tags) > 64:
        raise InvalidArgument.field(field, f"has {len(tags)} entries; at most 64 are allowed")
    for key, value in tags.items():
        if not TAG_KEY.match(key):
            raise InvalidArgument.field(
                f"{field}.{key}",
                "tag keys are a lower-case letter then up to 62 letters, digits, '_', '.' or '-'",
            )
        if len(value) > 256:
            raise InvalidArgument.field(f"{field}.{key}", "tag values are at most 256 characters")
    return dict(tags)
