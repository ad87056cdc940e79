"""Record layouts in, canonical rows out: detection of the schema, and one converter per schema.

A converter takes one parsed record and the dataset's kind and returns the canonical row (without
its id), or raises `Problem` naming the field (a dotted path such as `messages[2].role`) and a
reason code. Formats follow their usual definitions:

- OpenAI chat / TRL conversational: `{"messages": [{"role": "system"|"user"|"assistant", "content"}]}`
- Alpaca (as LLaMA-Factory ships it): `instruction`, `input`, `output`, `system`, `history` as
  `[[user, assistant], ...]`; preference `chosen`/`rejected`; KTO `kto_tag`.
- ShareGPT (as LLaMA-Factory ships it): `conversations` of `{"from": "human"|"gpt"|"system", "value"}`,
  optional `system`; preference `chosen`/`rejected` as `{"from": "gpt", "value"}`; KTO `kto_tag`.
- Qianfan: a JSON array of turns `{"prompt", "response": [["answer"]]}` (first turn may carry
  `system`); preference: the last turn's `response` lists the better answer first,
  `[["chosen"], ["rejected"]]`; KTO: `label` true/false on the last turn (or on the record).
- TRL standard: `prompt`/`completion`, `prompt`/`chosen`/`rejected`, `prompt`/`completion`/`label`,
  `prompt` (+ `reference`, `answer` or `solution`), each a string or a list of messages.
- Text: `{"text"}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from services.data import toolcalls
from services.data.problems import Problem, article, type_name
from services.kit.rows import ROLES, Kind, Row


class Schema(StrEnum):
    CANONICAL = "canonical"
    OPENAI_CHAT = "openai_chat"
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    QIANFAN = "qianfan"
    TRL = "trl"
    TEXT = "text"


Message = dict[str, Any]


def detect_schema(value: Any) -> Schema | None:
    """The schema a record looks like, or None."""
    if isinstance(value, list):
        return Schema.QIANFAN
    if not isinstance(value, dict):
        return None
    if "messages" in value or ("preferred_output" in value and isinstance(value.get("input"), dict)):
        return Schema.OPENAI_CHAT
    if "conversations" in value:
        return Schema.SHAREGPT
    if "instruction" in value:
        return Schema.ALPACA
    if "prompt" in value and "response" in value and isinstance(value.get("response"), list):
        return Schema.QIANFAN
    if "user" in value and ("assistant" in value or "chosen" in value):
        return Schema.QIANFAN
    if "prompt" in value or ("chosen" in value and "rejected" in value):
        return Schema.TRL
    if "text" in value:
        return Schema.TEXT
    return None


# -- small checks --------------------------------------------------------------------------------

_EMPTY_REASON = {
    "assistant": "EMPTY_RESPONSE",
    "user": "EMPTY_PROMPT",
    "system": "EMPTY_FIELD",
    "text": "EMPTY_TEXT",
}


def _need(record: dict[str, Any], key: str, path: str = "") -> Any:
    if key not in record or record[key] is None:
        raise Problem(path + key, "MISSING_FIELD", f"`{path + key}` is missing")
    return record[key]


def _string(value: Any, field: str, *, role: str = "user", allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be a string, not {type_name(value)}")
    if not allow_empty and not value.strip():
        reason = _EMPTY_REASON.get(role, "EMPTY_FIELD")
        raise Problem(field, reason, f"`{field}` is empty")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be an object, not {type_name(value)}")
    return value


def _array(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be an array, not {type_name(value)}")
    return value


def _label(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Problem(field, "LABEL_NOT_BOOLEAN", f"`{field}` must be true or false, not {value!r}")
    return value


def _weight(value: Any, role: str, field: str) -> int:
    """OpenAI's per-turn weight: 1 (trained) or 0 (kept as context, not trained), assistant turns only."""
    if role != "assistant":
        raise Problem(field, "WRONG_FIELD", f"only assistant turns have a weight, not {role} turns")
    if isinstance(value, bool) or value not in (0, 1):
        raise Problem(field, "INVALID_WEIGHT", f"a weight is 0 or 1, not {value!r}")
    return int(value)


def _check_order(messages: list[Message], field: str) -> list[Message]:
    """An optional system turn first, then user and assistant turns alternating, user first; an
    assistant turn that calls tools is followed by one or more tool turns, then by the assistant."""
    if not messages:
        raise Problem(field, "EMPTY_CONVERSATION", f"`{field}` has no turns")
    expected = ("user",)
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "system":
            if i != 0:
                raise Problem(f"{field}[{i}].role", "ROLE_ORDER", "a system turn may only come first")
            continue
        if role not in expected:
            wanted = " or ".join(article(e) for e in expected)
            raise Problem(
                f"{field}[{i}].role",
                "ROLE_ORDER",
                f"expected {wanted} turn here, found {role} (turns must alternate, user first)",
            )
        if role == "assistant":
            expected = ("tool",) if message.get("tool_calls") else ("user",)
        elif role == "tool":
            expected = ("tool", "assistant")
        else:
            expected = ("assistant",)
    if all(m["role"] == "system" for m in messages):
        raise Problem(field, "MISSING_USER_TURN", f"`{field}` has no user turn")
    if messages[-1]["role"] == "tool":
        raise Problem(
            f"{field}[{len(messages) - 1}]",
            "ROLE_ORDER",
            f"`{field}` ends with a tool result: the assistant's answer to it is missing",
        )
    return messages


def _chat_messages(value: Any, field: str) -> list[Message]:
    out = []
    for i, item in enumerate(_array(value, field)):
        item = _object(item, f"{field}[{i}]")
        role = _string(_need(item, "role", f"{field}[{i}]."), f"{field}[{i}].role")
        if role not in ROLES:
            raise Problem(
                f"{field}[{i}].role",
                "UNKNOWN_ROLE",
                f"unknown role {role!r}; use system, user, assistant or tool",
            )
        message: Message = {"role": role}
        if "weight" in item:
            message["weight"] = _weight(item["weight"], role, f"{field}[{i}].weight")
        if role == "assistant" and item.get("tool_calls"):
            message["content"] = _string(item.get("content") or "", f"{field}[{i}].content", allow_empty=True)
            message["tool_calls"] = toolcalls.tool_calls(item["tool_calls"], f"{field}[{i}].tool_calls")
        else:
            content = _need(item, "content", f"{field}[{i}].")
            message["content"] = _string(
                content, f"{field}[{i}].content", role=role, allow_empty=role == "tool"
            )
        if role == "assistant" and item.get("reasoning_content"):
            # DeepSeek's and vLLM's field for the reasoning: kept, as the <think> block before the answer.
            reasoning = _string(item["reasoning_content"], f"{field}[{i}].reasoning_content")
            message["content"] = f"<think>\n{reasoning}\n</think>\n\n{message['content']}"
        out.append(message)
    return _check_order(out, field)


def _as_prompt(value: Any, field: str) -> list[Message]:
    """A prompt given as a string or as messages ending with a user turn."""
    if isinstance(value, str):
        return [{"role": "user", "content": _string(value, field)}]
    messages = _chat_messages(value, field)
    if messages[-1]["role"] != "user":
        raise Problem(field, "ROLE_ORDER", f"`{field}` must end with a user turn")
    return messages


def _as_answer(value: Any, field: str) -> list[Message]:
    """A response given as a string, an assistant message, or a one-message list."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": _string(value, field, role="assistant")}]
    if isinstance(value, dict):
        value = [value]
    items = _array(value, field)
    if len(items) != 1:
        raise Problem(field, "WRONG_TYPE", f"`{field}` must hold exactly one assistant message")
    item = _object(items[0], f"{field}[0]")
    role = item.get("role", "assistant")
    if role != "assistant":
        raise Problem(f"{field}[0].role", "ROLE_ORDER", f"`{field}` must be an assistant message, not {role}")
    return [
        {
            "role": "assistant",
            "content": _string(
                _need(item, "content", f"{field}[0]."), f"{field}[0].content", role="assistant"
            ),
        }
    ]


def _from_conversation(messages: list[Message], kind: Kind, field: str) -> Row:
    """sft, eval and prompt_only rows from a full conversation."""
    last = messages[-1]["role"]
    if kind == Kind.SFT:
        if last != "assistant":
            raise Problem(
                field, "MISSING_ASSISTANT_TURN", f"`{field}` must end with an assistant turn to train on"
            )
        return {"messages": messages}
    if kind == Kind.EVAL:
        if last != "assistant":
            raise Problem(
                field, "MISSING_REFERENCE", f"`{field}` must end with an assistant turn: the reference answer"
            )
        return {"prompt": messages[:-1], "reference": messages[-1]["content"]}
    if kind == Kind.PROMPT_ONLY:
        if last == "assistant":
            return {"prompt": messages[:-1], "reference": messages[-1]["content"]}
        return {"prompt": messages, "reference": ""}
    raise Problem(field, "WRONG_KIND", f"a single conversation cannot make a {kind.value} row")


def _uses_tools(messages: list[Message]) -> bool:
    return any(m["role"] == "tool" or m.get("tool_calls") for m in messages)


def _tool_conversation(messages: list[Message], record: dict[str, Any], kind: Kind, field: str) -> Row:
    """A conversation that may call tools: sft rows keep the calls, results and `tools`; other kinds
    cannot hold them."""
    tools = toolcalls.normalize_tools(record.get("tools"))
    if not _uses_tools(messages):
        return _from_conversation(messages, kind, field)
    if kind != Kind.SFT:
        raise Problem(
            field,
            "WRONG_KIND",
            f"`{field}` calls tools: tool-calling conversations make sft datasets, not {kind.value}",
        )
    toolcalls.check_calls_known(messages, tools, field)
    row = _from_conversation(messages, kind, field)
    return {**row, "tools": tools} if tools else row


def _preference(prompt: list[Message], chosen: list[Message], rejected: list[Message]) -> Row:
    if chosen[0]["content"].strip() == rejected[0]["content"].strip():
        raise Problem(
            "rejected",
            "CHOSEN_EQUALS_REJECTED",
            "`chosen` and `rejected` are the same answer: nothing to learn",
        )
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _prompt_of(messages: list[Message], field: str) -> list[Message]:
    if messages[-1]["role"] != "user":
        raise Problem(
            field, "ROLE_ORDER", f"`{field}` must end with a user turn (the prompt the answers reply to)"
        )
    return messages


# -- converters ----------------------------------------------------------------------------------


# Keys of OpenAI's fine-tuning records that are not a row's own fields.
_OPENAI_KEYS = frozenset(
    {
        "messages",
        "tools",
        "parallel_tool_calls",
        "functions",
        "chosen",
        "rejected",
        "label",
        "input",
        "preferred_output",
        "non_preferred_output",
    }
)
# Extra fields that name the reference answer (OpenAI's reinforcement files, TRL's prompt-only data).
_REFERENCE_KEYS = ("reference", "reference_answer", "answer", "solution")


def _openai_preference(record: dict[str, Any], kind: Kind) -> Row:
    """OpenAI's DPO file: `input` {messages, tools}, `preferred_output`, `non_preferred_output`."""
    if kind != Kind.PREFERENCE:
        raise Problem(
            "preferred_output",
            "WRONG_KIND",
            f"OpenAI preference records make preference datasets, not {kind.value}",
        )
    given = _object(record["input"], "input")
    prompt = _prompt_of(
        _chat_messages(_need(given, "messages", "input."), "input.messages"), "input.messages"
    )
    return _preference(
        prompt,
        _as_answer(_need(record, "preferred_output"), "preferred_output"),
        _as_answer(_need(record, "non_preferred_output"), "non_preferred_output"),
    )


def _with_fields(row: Row, record: dict[str, Any]) -> Row:
    """A prompt_only or eval row with the record's extra fields (OpenAI's reinforcement files: what
    graders read as `item.…`), kept as JSON; a string reference among them fills an empty reference."""
    extra = {k: v for k, v in record.items() if k not in _OPENAI_KEYS}
    if not extra:
        return row
    if not row.get("reference"):
        named = next((extra[k] for k in _REFERENCE_KEYS if isinstance(extra.get(k), str) and extra[k]), "")
        row = {**row, "reference": named}
    return {**row, "fields": json.dumps(extra, ensure_ascii=False, sort_keys=True)}


def from_openai_chat(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if "preferred_output" in record and "messages" not in record:
        return _openai_preference(record, kind)
    messages = _chat_messages(_need(record, "messages"), "messages")
    if kind in (Kind.PROMPT_ONLY, Kind.EVAL) and messages[-1]["role"] == "user":
        row = _with_fields({"prompt": messages, "reference": ""}, record)
        if kind == Kind.EVAL and not row["reference"]:
            raise Problem(
                "messages",
                "MISSING_REFERENCE",
                "`messages` must end with an assistant turn (the reference answer), or the record must "
                f"carry one of {', '.join(_REFERENCE_KEYS)}",
            )
        return row
    if kind == Kind.PREFERENCE:
        return _preference(
            _prompt_of(messages, "messages"),
            _as_answer(_need(record, "chosen"), "chosen"),
            _as_answer(_need(record, "rejected"), "rejected"),
        )
    if kind == Kind.UNPAIRED_PREFERENCE:
        if messages[-1]["role"] != "assistant":
            raise Problem(
                "messages",
                "MISSING_ASSISTANT_TURN",
                "`messages` must end with the assistant turn being judged",
            )
        return {
            "prompt": messages[:-1],
            "completion": messages[-1:],
            "label": _label(_need(record, "label"), "label"),
        }
    row = _tool_conversation(messages, record, kind, "messages")
    return _with_fields(row, record) if kind in (Kind.PROMPT_ONLY, Kind.EVAL) else row


def from_trl(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if kind == Kind.TEXT:
        return {"text": _string(_need(record, "text"), "text", role="text")}
    prompt = _as_prompt(_need(record, "prompt"), "prompt")
    answer_key = "response" if "response" in record and "completion" not in record else "completion"
    if kind == Kind.SFT:
        if answer_key not in record:
            raise Problem(
                "completion",
                "MISSING_FIELD",
                "`completion` (or `response`) is missing: the answer to train on",
            )
        return {"messages": prompt + _as_answer(_need(record, answer_key), answer_key)}
    if kind == Kind.PREFERENCE:
        return _preference(
            prompt,
            _as_answer(_need(record, "chosen"), "chosen"),
            _as_answer(_need(record, "rejected"), "rejected"),
        )
    if kind == Kind.UNPAIRED_PREFERENCE:
        return {
            "prompt": prompt,
            "completion": _as_answer(_need(record, answer_key), answer_key),
            "label": _label(_need(record, "label"), "label"),
        }
    reference_key = next(
        (k for k in ("reference", "completion", "answer", "solution", "response") if k in record), None
    )
    if kind == Kind.EVAL:
        if reference_key is None:
            raise Problem(
                "reference",
                "MISSING_REFERENCE",
                "`reference` (or `completion`/`answer`) is missing: evaluation needs the expected answer",
            )
        value = record[reference_key]
        if _is_string_list(value):  # several acceptable answers
            return _references(prompt, value, reference_key)
        reference = (
            _as_answer(value, reference_key)[0]["content"]
            if not isinstance(value, str)
            else _string(value, reference_key, role="assistant")
        )
        if "references" in record:
            return _references(prompt, [reference, *_array(record["references"], "references")], "references")
        return {"prompt": prompt, "reference": reference}
    reference = ""
    if reference_key is not None and record[reference_key] is not None:
        value = record[reference_key]
        reference = value if isinstance(value, str) else _as_answer(value, reference_key)[0]["content"]
    return {"prompt": prompt, "reference": reference}


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


MAX_REFERENCES = 32


def _references(prompt: list[Message], values: list[Any], field: str) -> Row:
    """An eval row with several acceptable answers (`reference` is the first)."""
    if len(values) > MAX_REFERENCES:
        raise Problem(
            field, "TOO_MANY_REFERENCES", f"`{field}` holds {len(values)} answers; at most {MAX_REFERENCES}"
        )
    answers = [_string(v, f"{field}[{i}]", role="assistant") for i, v in enumerate(values)]
    answers = list(dict.fromkeys(answers))
    row: Row = {"prompt": prompt, "reference": answers[0]}
    if len(answers) > 1:
        row["references"] = answers
    return row


def _alpaca_conversation(record: dict[str, Any]) -> list[Message]:
    messages: list[Message] = []
    if record.get("system"):
        messages.append({"role": "system", "content": _string(record["system"], "system", role="system")})
    for i, pair in enumerate(_array(record.get("history") or [], "history")):
        pair = _array(pair, f"history[{i}]")
        if len(pair) != 2:
            raise Problem(f"history[{i}]", "WRONG_TYPE", f"`history[{i}]` must be [user, assistant]")
        messages.append({"role": "user", "content": _string(pair[0], f"history[{i}][0]")})
        messages.append(
            {"role": "assistant", "content": _string(pair[1], f"history[{i}][1]", role="assistant")}
        )
    instruction = _string(_need(record, "instruction"), "instruction")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise Problem("input", "WRONG_TYPE", f"`input` must be a string, not {type_name(extra)}")
    messages.append({"role": "user", "content": instruction + ("\n" + extra if extra.strip() else "")})
    return messages


def from_alpaca(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if kind == Kind.PREFERENCE:
        return _preference(
            _alpaca_conversation(record),
            _as_answer(_need(record, "chosen"), "chosen"),
            _as_answer(_need(record, "rejected"), "rejected"),
        )
    if kind == Kind.UNPAIRED_PREFERENCE:
        return {
            "prompt": _alpaca_conversation(record),
            "completion": _as_answer(_need(record, "output"), "output"),
            "label": _label(
                _need(record, "kto_tag") if "label" not in record else record["label"], "kto_tag"
            ),
        }
    messages = _alpaca_conversation(record)
    if kind in (Kind.SFT, Kind.EVAL) or record.get("output") not in (None, ""):
        messages.append(
            {"role": "assistant", "content": _string(_need(record, "output"), "output", role="assistant")}
        )
    return _from_conversation(messages, kind, "instruction")


_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


def _sharegpt_message(item: Any, field: str) -> Message:
    item = _object(item, field)
    speaker = _string(_need(item, "from", f"{field}."), f"{field}.from")
    if speaker not in _SHAREGPT_ROLES:
        raise Problem(
            f"{field}.from",
            "UNKNOWN_ROLE",
            f"unknown speaker {speaker!r}; use human, gpt, system, function_call or observation",
        )
    role = _SHAREGPT_ROLES[speaker]
    value = _need(item, "value", f"{field}.")
    if speaker == "function_call":
        return {"role": role, "content": "", "tool_calls": toolcalls.tool_calls(value, f"{field}.value")}
    if role == "tool" and not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)  # an observation given as an object
    return {"role": role, "content": _string(value, f"{field}.value", role=role, allow_empty=role == "tool")}


def from_sharegpt(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    messages = []
    if record.get("system"):
        messages.append({"role": "system", "content": _string(record["system"], "system", role="system")})
    for i, item in enumerate(_array(_need(record, "conversations"), "conversations")):
        messages.append(_sharegpt_message(item, f"conversations[{i}]"))
    messages = _check_order(messages, "conversations")
    if kind == Kind.PREFERENCE:
        chosen = _sharegpt_message(_need(record, "chosen"), "chosen")
        rejected = _sharegpt_message(_need(record, "rejected"), "rejected")
        return _preference(_prompt_of(messages, "conversations"), [chosen], [rejected])
    if kind == Kind.UNPAIRED_PREFERENCE:
        if messages[-1]["role"] != "assistant":
            raise Problem(
                "conversations",
                "MISSING_ASSISTANT_TURN",
                "`conversations` must end with the gpt turn being judged",
            )
        return {
            "prompt": messages[:-1],
            "completion": messages[-1:],
            "label": _label(_need(record, "kto_tag"), "kto_tag"),
        }
    return _tool_conversation(messages, record, kind, "conversations")


def _qianfan_answer(response: Any, field: str, index: int = 0) -> str:
    candidates = _array(response, field)
    if len(candidates) <= index:
        raise Problem(field, "MISSING_RESPONSE", f"`{field}` has no answer number {index + 1}")
    candidate = candidates[index]
    if isinstance(candidate, list):
        if not candidate:
            raise Problem(f"{field}[{index}]", "EMPTY_RESPONSE", f"`{field}[{index}]` is empty")
        candidate = candidate[0]
    return _string(candidate, f"{field}[{index}]", role="assistant")


def _qianfan_key(turn: dict[str, Any], names: tuple[str, ...]) -> str:
    """Which of Qianfan's spellings a turn uses (`prompt`/`response` or `user`/`assistant`)."""
    return next((n for n in names if n in turn), names[0])


def _qianfan_preference(final: dict[str, Any], messages: list[Message], last: int) -> Row:
    """`{user, chosen, rejected}` or `{prompt, response: [[better], [worse]]}` as the last turn."""
    if "chosen" in final or "rejected" in final:
        return _preference(
            messages,
            _as_answer(_need(final, "chosen", f"[{last}]."), f"[{last}].chosen"),
            _as_answer(_need(final, "rejected", f"[{last}]."), f"[{last}].rejected"),
        )
    key = _qianfan_key(final, ("response", "assistant"))
    field = f"[{last}].{key}"
    response = _need(final, key, f"[{last}].")
    if len(_array(response, field)) < 2:
        raise Problem(
            field,
            "MISSING_RESPONSE",
            f"`{field}` needs two answers for preference data: [[better], [worse]] "
            "(or give the last turn `chosen` and `rejected`)",
        )
    return _preference(
        messages,
        [{"role": "assistant", "content": _qianfan_answer(response, field, 0)}],
        [{"role": "assistant", "content": _qianfan_answer(response, field, 1)}],
    )


def _qianfan_turns(turns: list[Any]) -> list[Message]:
    """The system turn and every turn's question, with the answers of all but the last."""
    messages: list[Message] = []
    first = _object(turns[0], "[0]")
    if first.get("system"):
        messages.append({"role": "system", "content": _string(first["system"], "[0].system", role="system")})
    last = len(turns) - 1
    for i, turn in enumerate(turns):
        turn = _object(turn, f"[{i}]")
        ask = _qianfan_key(turn, ("prompt", "user"))
        messages.append({"role": "user", "content": _string(_need(turn, ask, f"[{i}]."), f"[{i}].{ask}")})
        if i < last:
            key = _qianfan_key(turn, ("response", "assistant"))
            value = _need(turn, key, f"[{i}].")
            content = (
                _string(value, f"[{i}].{key}", role="assistant")
                if isinstance(value, str)
                else _qianfan_answer(value, f"[{i}].{key}")
            )
            messages.append({"role": "assistant", "content": content})
    return messages


def from_qianfan(record: Any, kind: Kind) -> Row:
    turns = [record] if isinstance(record, dict) else _array(record, "record")
    if not turns:
        raise Problem("record", "EMPTY_CONVERSATION", "the record has no turns")
    messages = _qianfan_turns(turns)
    last = len(turns) - 1
    final = turns[last]
    key = _qianfan_key(final, ("response", "assistant"))
    field = f"[{last}].{key}"
    if kind == Kind.PREFERENCE:
        return _qianfan_preference(final, messages, last)

    def answer() -> str:
        value = _need(final, key, f"[{last}].")
        return (
            _string(value, field, role="assistant")
            if isinstance(value, str)
            else _qianfan_answer(value, field)
        )

    if kind == Kind.UNPAIRED_PREFERENCE:
        label_holder = final if "label" in final else (record if isinstance(record, dict) else final)
        return {
            "prompt": messages,
            "completion": [{"role": "assistant", "content": answer()}],
            "label": _label(_need(label_holder, "label", f"[{last}]."), f"[{last}].label"),
        }
    if kind == Kind.PROMPT_ONLY and not final.get(key):
        return {"prompt": messages, "reference": ""}
    messages.append({"role": "assistant", "content": answer()})
    return _from_conversation(messages, kind, field)


def from_text(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    return {"text": _string(_need(record, "text"), "text", role="text")}


def from_canonical(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if kind == Kind.TEXT:
        return from_text(record, kind)
    if kind == Kind.SFT:
        return _tool_conversation(
            _chat_messages(_need(record, "messages"), "messages"), record, kind, "messages"
        )
    return from_trl(record, kind)


CONVERTERS: dict[Schema, Callable[[Any, Kind], Row]] = {
    Schema.CANONICAL: from_canonical,
    Schema.OPENAI_CHAT: from_openai_chat,
    Schema.ALPACA: from_alpaca,
    Schema.SHAREGPT: from_sharegpt,
    Schema.QIANFAN: from_qianfan,
    Schema.TRL: from_trl,
    Schema.TEXT: from_text,
}

# Which schemas can make which kinds (text data has no conversation, conversations have no plain text).
ACCEPTS: dict[Kind, set[Schema]] = {
    Kind.TEXT: {Schema.TEXT, Schema.CANONICAL, Schema.TRL},
    **{k: set(Schema) - {Schema.TEXT} for k in Kind if k != Kind.TEXT},
}
