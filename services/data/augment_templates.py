"""The prompts augmentation and annotation send to a teacher: defaults, overrides, and the fields a
row offers to them.

A template is text with `{{ field }}` placeholders. Row fields come from the canonical row
(`prompt`, `answer`, `reference`, ...; `fields.NAME` for an eval or prompt_only row's extra fields);
operation fields (`examples`, `method`, `language`, ...) are filled by the operation. A template that
names a field the rows lack is refused when the run is created, naming the template and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.kit.judging import single_prompt
from services.kit.rows import Kind, Row

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
FIELD_NAME = re.compile(r"^(?:[a-z_]+|fields\.[A-Za-z_][\w-]*)$")
MAX_TEMPLATE_CHARS = 20_000

# Fields of a row by its kind (`row_fields` makes them).
ROW_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.TEXT: ("text", "prompt", "item"),
    Kind.SFT: ("prompt", "conversation", "system", "answer", "item"),
    Kind.PREFERENCE: ("prompt", "conversation", "system", "answer", "chosen", "rejected", "item"),
    Kind.UNPAIRED_PREFERENCE: ("prompt", "conversation", "system", "answer", "item"),
    Kind.PROMPT_ONLY: ("prompt", "conversation", "system", "reference", "answer", "item"),
    Kind.EVAL: ("prompt", "conversation", "system", "reference", "answer", "item"),
}

EVOLUTION_METHODS = (
    "Add one more constraint or requirement to it.",
    "If it asks about a general matter, ask about it in more depth and breadth.",
    "Replace general concepts with more specific ones.",
    "If it can be solved in a few simple steps, rewrite it to require several steps of reasoning.",
    "Write a new prompt in the same domain as the given one, on a rarer topic, of similar length "
    "and difficulty (this one replaces the given prompt).",
)
LANGUAGES = {"zh": "Simplified Chinese (简体中文)", "en": "English"}


@dataclass(frozen=True)
class Template:
    name: str
    operations: tuple[str, ...]
    text: str
    description: str
    # Fields the operation fills besides the row's.
    extra: tuple[str, ...] = ()


DEFAULTS: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "answer",
            ("answer", "paraphrase", "self_instruct", "evol_instruct", "preference_pairs"),
            "{{ prompt }}",
            "The last user turn sent for an answer (the rest of the conversation goes as it is).",
            ("prompt", "system", "conversation"),
        ),
        Template(
            "paraphrase",
            ("paraphrase",),
            "Rewrite the request below in different words. Keep its meaning, its language, every fact "
            "and number, and every requirement it states. Reply with the rewritten request only.\n\n"
            "[Request]\n{{ prompt }}",
            "One rewrite of a prompt (asked `samples` times at the run's temperature).",
        ),
        Template(
            "self_instruct",
            ("self_instruct",),
            "You write tasks for training an assistant. Here are tasks from one domain:\n\n{{ examples }}\n\n"
            "Write one new task in the same domain and style, in the same language, different from "
            "every task above. Reply with the task only.",
            "A new prompt from seed prompts shown as examples.",
            ("examples",),
        ),
        Template(
            "evol_instruct",
            ("evol_instruct",),
            "I want you to act as a prompt rewriter: rewrite the given prompt into a more complex "
            "version that a capable assistant can still answer. {{ method }} The rewritten prompt must "
            "stay reasonable, understandable and in the same language as the given one; do not answer "
            "it. Reply with the rewritten prompt only.\n\n[Given prompt]\n{{ prompt }}",
            "One evolution of a prompt (Evol-Instruct); `method` is one of five, chosen by the seed.",
            ("method",),
        ),
        Template(
            "translate",
            ("translate",),
            "Translate the text below into {{ language }}. Keep its meaning, its formatting, numbers "
            "and names; translate everything and add nothing. Reply with the translation only.\n\n"
            "[Text]\n{{ text }}",
            "Each text of a row (every turn, answers included) translated on its own.",
            ("language", "text"),
        ),
        Template(
            "judge",
            ("preference_pairs", "judge_filter"),
            single_prompt("{{ prompt }}", "{{ reference }}", "{{ answer }}", "{{ rubric }}"),
            "The judge's single-answer prompt (the evaluation service's); the reply's `Score: N` (1-10) "
            "ranks answers and feeds `judge_min_score`; `reference` is `(none)` where a row has none.",
            ("prompt", "reference", "answer", "rubric"),
        ),
        Template(
            "annotate_score",
            ("annotation:score",),
            "{{ instructions }}\nRate the item below with a whole score from {{ score_min }} to "
            "{{ score_max }}.\n\n{{ item }}\n\nReply with one line `Score: N`, then one line with your reason.",
            "Pre-labelling a score.",
            ("instructions", "score_min", "score_max"),
        ),
        Template(
            "annotate_label",
            ("annotation:label",),
            "{{ instructions }}\nChoose the one label that fits the item below, from: {{ labels }}.\n\n"
            "{{ item }}\n\nReply with one line `Label: <label>`, then one line with your reason.",
            "Pre-labelling a label from the task's set.",
            ("instructions", "labels"),
        ),
        Template(
            "annotate_correction",
            ("annotation:correction",),
            "{{ instructions }}\nBelow are a request and an answer to it. Write the correct and complete "
            "answer to the request (the answer as it is, if it is already right).\n\n[Request]\n"
            "{{ prompt }}\n[Answer]\n{{ answer }}\n\nReply with the answer only.",
            "Pre-labelling a corrected answer; `answer` is `(none)` where a row has none.",
            ("instructions", "answer"),
        ),
        Template(
            "annotate_choice",
            ("annotation:choice",),
            "{{ instructions }}\nWhich of the two answers to the request is better?\n\n[Request]\n"
            '{{ prompt }}\n[Answer A]\n{{ answer_a }}\n[Answer B]\n{{ answer_b }}\n\nReply with "[[A]]" '
            'if A is better or "[[B]]" if B is better, then your reason.',
            "Pre-labelling a choice between two answers.",
            ("instructions", "answer_a", "answer_b"),
        ),
    )
}


class TemplateError(ValueError):
    """A template that cannot be used: `template` names it, the message says why."""

    def __init__(self, template: str, message: str) -> None:
        super().__init__(message)
        self.template = template


def placeholders(text: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def render(text: str, values: Mapping[str, str]) -> str:
    """`text` with its placeholders filled (every one must be in `values`: `check` saw to that)."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _last(messages: list[dict], role: str) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == role), "")


def _conversation(messages: Iterable[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def prompt_messages(row: Row, kind: Kind) -> list[dict]:
    """The conversation a row asks: everything up to its last user turn (the text for text rows)."""
    if kind == Kind.TEXT:
        return [{"role": "user", "content": row["text"]}]
    if kind == Kind.SFT:
        messages = row["messages"]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        return [dict(m) for m in messages[: last_user + 1]]
    return [dict(m) for m in row["prompt"]]


def row_answer(row: Row, kind: Kind) -> str:
    if kind == Kind.SFT:
        return _last(row["messages"], "assistant")
    if kind == Kind.PREFERENCE:
        return _last(row["chosen"], "assistant")
    if kind == Kind.UNPAIRED_PREFERENCE:
        return _last(row["completion"], "assistant")
    return str(row.get("reference") or "")


def row_fields(row: Row, kind: Kind) -> dict[str, str]:
    """The values a row offers to templates (empty strings where it has nothing)."""
    if kind == Kind.TEXT:
        return {"text": row["text"], "prompt": row["text"], "item": row["text"]}
    prompt = prompt_messages(row, kind)
    values = {
        "prompt": _last(prompt, "user"),
        "conversation": _conversation(prompt),
        "system": _last(prompt, "system"),
        "answer": row_answer(row, kind),
    }
    if kind == Kind.PREFERENCE:
        values["chosen"], values["rejected"] = values["answer"], _last(row["rejected"], "assistant")
    if kind in (Kind.PROMPT_ONLY, Kind.EVAL):
        values["reference"] = str(row.get("reference") or "")
        extra = json.loads(row["fields"]) if row.get("fields") else {}
        for key, value in extra.items() if isinstance(extra, dict) else ():
            values[f"fields.{key}"] = (
                value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            )
    item = values["conversation"]
    if values["answer"]:
        item += f"\nassistant: {values['answer']}"
    values["item"] = item
    return values


def effective(overrides: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The templates a run uses: its overrides, else the defaults, for `names`."""
    return {name: overrides.get(name) or DEFAULTS[name].text for name in names}


def check(templates: Mapping[str, str], used: Iterable[str], rows: list[Row], kind: Kind) -> dict[str, str]:
    """The effective templates of `used`, after checking every override is a known template, every
    placeholder is a field the operation fills or every row has, refusing with a TemplateError
    (which names the template; its message says what is wrong)."""
    used = list(used)
    for name in templates:
        if name not in DEFAULTS:
            raise TemplateError(name, f"no template is named {name!r} (known: {', '.join(DEFAULTS)})")
        if name not in used:
            raise TemplateError(
                name,
                f"this operation does not use the template {name!r} (it uses {', '.join(used)})",
            )
    out = effective(templates, used)
    for name, text in out.items():
        if len(text) > MAX_TEMPLATE_CHARS:
            raise TemplateError(name, f"longer than {MAX_TEMPLATE_CHARS} characters")
        for placeholder in placeholders(text):
            if not FIELD_NAME.match(placeholder):
                raise TemplateError(
                    name,
                    f"{{{{ {placeholder[:40]} }}}} is not a field name "
                    "(letters and underscores, or fields.NAME)",
                )
            if placeholder in DEFAULTS[name].extra:
                continue
            if placeholder not in ROW_FIELDS[kind] and not placeholder.startswith("fields."):
                raise TemplateError(
                    name,
                    f"{{{{ {placeholder} }}}} is not a field of {kind.value} rows "
                    f"(they have {', '.join(ROW_FIELDS[kind] + DEFAULTS[name].extra)})",
                )
            lacking = next((r for r in rows if not row_fields(r, kind).get(placeholder)), None)
            if lacking is not None:
                raise TemplateError(
                    name,
                    f"{{{{ {placeholder} }}}} names a field that row "
                    f"{str(lacking['id'])[:60]!r} lacks (or leaves empty)",
                )
    return out
