"""Personal data patterns: e-mail, phone numbers (Chinese mobile numbers too), Chinese resident ID
numbers (checksum verified), IPv4 addresses and bank card numbers (Luhn verified)."""

from __future__ import annotations

import re
from collections.abc import Callable

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def cn_id_valid(number: str) -> bool:
    body, check = number[:17], number[17].upper()
    if not body.isdigit():
        return False
    return _CN_ID_CHECK[sum(int(d) * w for d, w in zip(body, _CN_ID_WEIGHTS, strict=True)) % 11] == check


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Order matters: the more specific patterns run first so a Chinese ID is not taken for a card.
PATTERNS: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None, str]] = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), None, "[EMAIL]"),
    "cn_id": (re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])"), cn_id_valid, "[CN_ID]"),
    "bank_card": (
        re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"),
        lambda s: luhn_valid(s) and len(re.sub(r"\D", "", s)) >= 13,
        "[BANK_CARD]",
    ),
    "cn_mobile": (re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d{9}(?!\d)"), None, "[PHONE]"),
    "phone": (
        re.compile(r"(?<![\w+])\+?\d{1,3}[ -]?\(?\d{2,4}\)?[ -]?\d{3,4}[ -]?\d{3,4}(?!\d)"),
        None,
        "[PHONE]",
    ),
    "ip": (
        re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"),
        None,
        "[IP]",
    ),
}
KINDS = tuple(PATTERNS)


def find(text: str, kinds: tuple[str, ...] = KINDS) -> dict[str, int]:
    """How many of each kind of personal data `text` holds."""
    return mask(text, kinds)[1]


def mask(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, dict[str, int]]:
    """`text` with each kind replaced by its placeholder, and the counts."""
    counts: dict[str, int] = {}
    for kind in KINDS:
        if kind not in kinds:
            continue
        pattern, check, placeholder = PATTERNS[kind]
        hits = [m for m in pattern.finditer(text) if check is None or check(m.group())]
        if hits:
            counts[kind] = len(hits)
            text = _replace(text, hits, placeholder)
    return text, counts


def _replace(text: str, hits: list[re.Match[str]], placeholder: str) -> str:
    out, last = [], 0
    for match in hits:
        out.append(text[last : match.start()])
        out.append(placeholder)
        last = match.end()
    out.append(text[last:])
    return "".join(out)
