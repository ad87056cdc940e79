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

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from services.kit.rows import ROLES, Kind, Row


class Schema(StrEnum):
    CANONICAL = "canonical"
    OPENAI_CHAT = "openai_chat"
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    QIANFAN = "qianfan"
    TRL = "trl"
    TEXT = "text"


class Problem(Exception):
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


Message = dict[str, str]


def detect_schema(value: Any) -> Schema | None:
    """The schema a record looks like, or None."""
    if isinstance(value, list):
        return Schema.QIANFAN
    if not isinstance(value, dict):
        return None
    if "messages" in value:
        return Schema.OPENAI_CHAT
    if "conversations" in value:
        return Schema.SHAREGPT
    if "instruction" in value:
        return Schema.ALPACA
    if "prompt" in value and "response" in value and isinstance(value.get("response"), list):
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


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _need(record: dict[str, Any], key: str, path: str = "") -> Any:
    if key not in record or record[key] is None:
        raise Problem(path + key, "MISSING_FIELD", f"`{path + key}` is missing")
    return record[key]


def _string(value: Any, field: str, *, role: str = "user", allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be a string, not {_type_name(value)}")
    if not allow_empty and not value.strip():
        reason = _EMPTY_REASON.get(role, "EMPTY_FIELD")
        raise Problem(field, reason, f"`{field}` is empty")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be an object, not {_type_name(value)}")
    return value


def _array(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise Problem(field, "WRONG_TYPE", f"`{field}` must be an array, not {_type_name(value)}")
    return value


def _label(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Problem(field, "LABEL_NOT_BOOLEAN", f"`{field}` must be true or false, not {value!r}")
    return value


def _check_order(messages: list[Message], field: str) -> list[Message]:
    """An optional system turn first, then user and assistant turns alternating, user first."""
    if not messages:
        raise Problem(field, "EMPTY_CONVERSATION", f"`{field}` has no turns")
    expected = "user"
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "system":
            if i != 0:
                raise Problem(f"{field}[{i}].role", "ROLE_ORDER", "a system turn may only come first")
            continue
        if role != expected:
            raise Problem(
                f"{field}[{i}].role",
                "ROLE_ORDER",
                f"expected a {expected} turn here, found {role} (turns must alternate, user first)",
            )
        expected = "assistant" if role == "user" else "user"
    if all(m["role"] == "system" for m in messages):
        raise Problem(field, "MISSING_USER_TURN", f"`{field}` has no user turn")
    return messages


def _chat_messages(value: Any, field: str) -> list[Message]:
    out = []
    for i, item in enumerate(_array(value, field)):
        item = _object(item, f"{field}[{i}]")
        role = _string(_need(item, "role", f"{field}[{i}]."), f"{field}[{i}].role")
        if role not in ROLES:
            raise Problem(
                f"{field}[{i}].role", "UNKNOWN_ROLE", f"unknown role {role!r}; use system, user or assistant"
            )
        content = _string(_need(item, "content", f"{field}[{i}]."), f"{field}[{i}].content", role=role)
        out.append({"role": role, "content": content})
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


def from_openai_chat(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    messages = _chat_messages(_need(record, "messages"), "messages")
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
    return _from_conversation(messages, kind, "messages")


def from_trl(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if kind == Kind.TEXT:
        return {"text": _string(_need(record, "text"), "text", role="text")}
    prompt = _as_prompt(_need(record, "prompt"), "prompt")
    if kind == Kind.SFT:
        return {"messages": prompt + _as_answer(_need(record, "completion"), "completion")}
    if kind == Kind.PREFERENCE:
        return _preference(
            prompt,
            _as_answer(_need(record, "chosen"), "chosen"),
            _as_answer(_need(record, "rejected"), "rejected"),
        )
    if kind == Kind.UNPAIRED_PREFERENCE:
        return {
            "prompt": prompt,
            "completion": _as_answer(_need(record, "completion"), "completion"),
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
        reference = (
            _as_answer(value, reference_key)[0]["content"]
            if not isinstance(value, str)
            else _string(value, reference_key, role="assistant")
        )
        return {"prompt": prompt, "reference": reference}
    reference = ""
    if reference_key is not None and record[reference_key] is not None:
        value = record[reference_key]
        reference = value if isinstance(value, str) else _as_answer(value, reference_key)[0]["content"]
    return {"prompt": prompt, "reference": reference}


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
        raise Problem("input", "WRONG_TYPE", f"`input` must be a string, not {_type_name(extra)}")
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
}


def _sharegpt_message(item: Any, field: str) -> Message:
    item = _object(item, field)
    speaker = _string(_need(item, "from", f"{field}."), f"{field}.from")
    if speaker not in _SHAREGPT_ROLES:
        raise Problem(
            f"{field}.from", "UNKNOWN_ROLE", f"unknown speaker {speaker!r}; use human, gpt or system"
        )
    role = _SHAREGPT_ROLES[speaker]
    return {"role": role, "content": _string(_need(item, "value", f"{field}."), f"{field}.value", role=role)}


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
    return _from_conversation(messages, kind, "conversations")


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


def from_qianfan(record: Any, kind: Kind) -> Row:
    turns = [record] if isinstance(record, dict) else _array(record, "record")
    if not turns:
        raise Problem("record", "EMPTY_CONVERSATION", "the record has no turns")
    messages: list[Message] = []
    first = _object(turns[0], "[0]")
    if first.get("system"):
        messages.append({"role": "system", "content": _string(first["system"], "[0].system", role="system")})
    last = len(turns) - 1
    for i, turn in enumerate(turns):
        turn = _object(turn, f"[{i}]")
        messages.append(
            {"role": "user", "content": _string(_need(turn, "prompt", f"[{i}]."), f"[{i}].prompt")}
        )
        if i < last:
            messages.append(
                {
                    "role": "assistant",
                    "content": _qianfan_answer(_need(turn, "response", f"[{i}]."), f"[{i}].response"),
                }
            )
    final = turns[last]
    field = f"[{last}].response"
    if kind == Kind.PREFERENCE:
        response = _need(final, "response", f"[{last}].")
        if len(_array(response, field)) < 2:
            raise Problem(
                field,
                "MISSING_RESPONSE",
                f"`{field}` needs two answers for preference data: [[better], [worse]]",
            )
        return _preference(
            messages,
            [{"role": "assistant", "content": _qianfan_answer(response, field, 0)}],
            [{"role": "assistant", "content": _qianfan_answer(response, field, 1)}],
        )
    if kind == Kind.UNPAIRED_PREFERENCE:
        label_holder = final if "label" in final else (record if isinstance(record, dict) else final)
        return {
            "prompt": messages,
            "completion": [
                {
                    "role": "assistant",
                    "content": _qianfan_answer(_need(final, "response", f"[{last}]."), field),
                }
            ],
            "label": _label(_need(label_holder, "label", f"[{last}]."), f"[{last}].label"),
        }
    if kind == Kind.PROMPT_ONLY and not final.get("response"):
        return {"prompt": messages, "reference": ""}
    messages.append(
        {"role": "assistant", "content": _qianfan_answer(_need(final, "response", f"[{last}]."), field)}
    )
    return _from_conversation(messages, kind, field)


def from_text(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    return {"text": _string(_need(record, "text"), "text", role="text")}


def from_canonical(record: Any, kind: Kind) -> Row:
    record = _object(record, "record")
    if kind == Kind.TEXT:
        return from_text(record, kind)
    if kind == Kind.SFT:
        return _from_conversation(_chat_messages(_need(record, "messages"), "messages"), kind, "messages")
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
