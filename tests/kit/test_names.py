"""Resource names, page tokens, filters and ordering."""

from __future__ import annotations

import pytest

from services.kit.errors import InvalidArgument
from services.kit.names import (
    MAX_PAGE_SIZE,
    NamePattern,
    PageTokens,
    check_id,
    page_size,
    parse_filter,
    parse_order_by,
)


@pytest.mark.parametrize("good", ["a", "abc", "a-1", "x" * 63, "essay-grader-v2"])
def test_valid_ids(good: str) -> None:
    assert check_id(good, "model_id") == good


@pytest.mark.parametrize("bad", ["", "A", "1a", "a_b", "a-", "x" * 64, "a b", "a/b", "ä"])
def test_invalid_ids_name_the_field(bad: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_id(bad, "model_id")
    assert caught.value.violations[0].field == "model_id"


def test_name_pattern() -> None:
    pattern = NamePattern("projects/{project}/models/{model}")
    assert pattern.parse("projects/p1/models/m-2") == {"project": "p1", "model": "m-2"}
    for bad in (
        "projects/p1/models",
        "projects/p1/datasets/m",
        "projects/P/models/m",
        "projects/p1/models/m/x",
    ):
        with pytest.raises(InvalidArgument) as caught:
            pattern.parse(bad, "parent")
        assert caught.value.violations[0].field == "parent"
    assert pattern.format(project="p", model="m") == "projects/p/models/m"


def test_page_size() -> None:
    assert page_size(0) == 50
    assert page_size(7) == 7
    assert page_size(10**6) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_page_tokens_are_signed_and_bound_to_their_request() -> None:
    tokens = PageTokens(b"0123456789abcdef")
    token = tokens.encode({"v": "2026-01-01T00:00:00", "t": "abc"}, "ListModels|p|")
    assert tokens.decode(token, "ListModels|p|") == {"v": "2026-01-01T00:00:00", "t": "abc"}
    with pytest.raises(InvalidArgument):
        tokens.decode(token, "ListModels|p|model_id = x")
    with pytest.raises(InvalidArgument):
        PageTokens(b"another-secret-xx").decode(token, "ListModels|p|")
    for tampered in (token[:-1], token + "A", "", "!!!", token.swapcase()):
        with pytest.raises(InvalidArgument):
            tokens.decode(tampered, "ListModels|p|")


def test_filters() -> None:
    allowed = {"model_id", "tags.family"}.__contains__
    assert parse_filter('model_id = "a b" AND tags.family = llama', allowed) == [
        ("model_id", "a b"),
        ("tags.family", "llama"),
    ]
    assert parse_filter("  ", allowed) == []
    assert parse_filter(r'model_id = "say \"hi\""', allowed) == [("model_id", 'say "hi"')]
    with pytest.raises(InvalidArgument, match="cannot filter on 'owner'"):
        parse_filter("owner = x", allowed)
    with pytest.raises(InvalidArgument, match="term 2"):
        parse_filter("model_id = x AND tags.family > 3", allowed)


def test_order_by() -> None:
    allowed = {"create_time", "model_id"}
    assert parse_order_by("", allowed, "create_time") == ("create_time", False)
    assert parse_order_by("model_id desc", allowed, "create_time") == ("model_id", True)
    assert parse_order_by("model_id asc", allowed, "create_time") == ("model_id", False)
    for bad in ("size", "model_id up", "model_id desc extra"):
        with pytest.raises(InvalidArgument):
            parse_order_by(bad, allowed, "create_time")
