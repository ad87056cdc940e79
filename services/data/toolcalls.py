"""Tool calling in uploaded records, normalized to OpenAI's shapes (what chat templates take).

Canonically a conversation with tools holds assistant turns with `tool_calls`
(`[{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}]`), `tool` turns with
the result, and the row's `tools`: the functions' JSON schemas, as JSON text of
`[{"type": "function", "function": {"name", "description", "parameters"}}]`.

Inputs accepted: OpenAI's own form, and LLaMA-Factory's (glaive) ShareGPT form, where a
`function_call` turn's `value` is `{"name", "arguments"}` (or a list of them, for parallel calls),
an `observation` turn is the tool's answer, and `tools` is a JSON string of bare function schemas.
"""

from __future__ import annotations

import json
from typing import Any

from services.data.problems import Problem, type_name


def _parsed(value: Any, field: str, reason: str, what: str) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "too deep"
        raise Problem(field, reason, f"`{field}` must be {what} as JSON ({detail})") from None


def normalize_tools(value: Any, field: str = "tools") -> str | None:
    """The functions a conversation may call, as canonical JSON text; None when there are none."""
    tools = _parsed(value, field, "INVALID_TOOLS", "a list of function schemas")
    if tools in (None, []):
        return None
    if not isinstance(tools, list):
        raise Problem(
            field, "INVALID_TOOLS", f"`{field}` must be a list of function schemas, not {type_name(tools)}"
        )
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise Problem(f"{field}[{i}]", "INVALID_TOOLS", f"`{field}[{i}]` must be an object")
        function = tool.get("function") if tool.get("type") == "function" else tool
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise Problem(f"{field}[{i}]", "INVALID_TOOLS", f"`{field}[{i}]` needs a function `name`")
        out.append({"type": "function", "function": function})
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def tool_names(tools: str | None) -> set[str]:
    return {t["function"]["name"] for t in json.loads(tools)} if tools else set()


def _one_call(call: Any, field: str, index: int) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise Problem(field, "INVALID_TOOL_CALL", f"`{field}` must hold {{name, arguments}} objects")
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Problem(field, "INVALID_TOOL_CALL", f"`{field}` names no function (`name` is missing)")
    arguments = function.get("arguments", function.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = _parsed(arguments, field, "INVALID_TOOL_CALL", "the arguments object") or {}
    if not isinstance(arguments, dict):
        raise Problem(
            field, "INVALID_TOOL_CALL", f"`{field}` arguments must be an object, not {type_name(arguments)}"
        )
    return {
        "id": str(call.get("id") or f"call_{index}"),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def tool_calls(value: Any, field: str, first_index: int = 0) -> list[dict[str, Any]]:
    """One call or a list of calls (glaive's JSON text, or OpenAI's objects) in canonical form."""
    calls = _parsed(value, field, "INVALID_TOOL_CALL", "a {name, arguments} object")
    if calls is None:
        raise Problem(field, "INVALID_TOOL_CALL", f"`{field}` is empty: a function call needs a name")
    calls = calls if isinstance(calls, list) else [calls]
    if not calls:
        raise Problem(field, "INVALID_TOOL_CALL", f"`{field}` holds no call")
    return [_one_call(c, field, first_index + i) for i, c in enumerate(calls)]


def check_calls_known(messages: list[dict[str, Any]], tools: str | None, field: str) -> None:
    """Every called function is one the row's `tools` declares (when it declares any)."""
    names = tool_names(tools)
    if not names:
        return
    for i, message in enumerate(messages):
        for call in message.get("tool_calls") or []:
            if call["function"]["name"] not in names:
                raise Problem(
                    f"{field}[{i}]",
                    "UNKNOWN_TOOL",
                    f"calls `{call['function']['name']}`, which `tools` does not declare "
                    f"(declared: {', '.join(sorted(names))})",
                )
