"""The augmentation operations: what each asks a teacher for one unit of work (a source row, or
one new prompt for self_instruct), and the rows it makes of the replies.

Units are independent and deterministic: the same unit asks the same requests (sample indexes and
seeds included), so a run that restarts asks again only what its cache lacks. Format checks run on
each generated text before the judge is asked about it (a row the format drops costs no judge call).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.data import augment_templates as templates
from services.data.augment_filters import Filters, Generated, Rejected, format_problem
from services.data.teacher_calls import Reply, ReplyError
from services.kit.judging import DEFAULT_RUBRIC, parse_score
from services.kit.rows import Kind, Row

OPERATIONS = ("answer", "paraphrase", "self_instruct", "evol_instruct", "preference_pairs", "translate")
# The templates each operation uses (the judge's when it judges).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "answer": ("answer",),
    "paraphrase": ("paraphrase", "answer"),
    "self_instruct": ("self_instruct", "answer"),
    "evol_instruct": ("evol_instruct", "answer"),
    "preference_pairs": ("answer", "judge"),
    "translate": ("translate",),
}
# The source kinds each operation reads.
SOURCE_KINDS: dict[str, tuple[Kind, ...]] = {
    "answer": (Kind.PROMPT_ONLY, Kind.EVAL, Kind.SFT, Kind.TEXT),
    "paraphrase": (Kind.SFT, Kind.PROMPT_ONLY, Kind.EVAL, Kind.PREFERENCE, Kind.UNPAIRED_PREFERENCE),
    "self_instruct": (Kind.SFT, Kind.PROMPT_ONLY, Kind.EVAL, Kind.PREFERENCE, Kind.UNPAIRED_PREFERENCE),
    "evol_instruct": (Kind.SFT, Kind.PROMPT_ONLY, Kind.EVAL, Kind.PREFERENCE, Kind.UNPAIRED_PREFERENCE),
    "preference_pairs": (Kind.PROMPT_ONLY, Kind.EVAL, Kind.SFT),
    "translate": tuple(Kind),
}


class Asks(Protocol):
    async def ask(
        self,
        messages: list[dict[str, str]],
        *,
        sample: int = 0,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Reply: ...


@dataclass(frozen=True)
class Parameters:
    samples: int
    count: int
    rounds: int
    regenerate_answers: bool
    answer: bool
    include_source: bool
    target_language: str
    output_kind: Kind
    min_score_margin: float
    desirable_score: float
    examples_per_prompt: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    max_rows: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "output_kind": self.output_kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parameters:
        return cls(**{**data, "output_kind": Kind(data["output_kind"])})


def output_kind(operation: str, source: Kind, answer: bool, requested: Kind | None) -> Kind:
    """The kind of the rows `operation` makes from `source` rows."""
    if operation == "answer":
        return Kind.SFT
    if operation in ("self_instruct", "evol_instruct"):
        return Kind.SFT if answer else Kind.PROMPT_ONLY
    if operation == "preference_pairs":
        return requested or Kind.PREFERENCE
    return source


@dataclass
class Unit:
    """What one unit of work made: kept candidates, and those the format checks or the judge dropped."""

    generated: list[Generated] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass
class Operation:
    """One run's operation, bound to its teacher, judge, templates and parameters."""

    name: str
    source_kind: Kind
    out_kind: Kind
    params: Parameters
    filters: Filters
    templates: dict[str, str]
    teacher: Asks
    judge: Asks
    seeds: Sequence[Row] = ()

    def units(self, rows: Sequence[Row]) -> int:
        return self.params.count if self.name == "self_instruct" else len(rows)

    async def run(self, index: int, rows: Sequence[Row]) -> Unit:
        handler = {
            "answer": self._answer,
            "paraphrase": self._paraphrase,
            "self_instruct": self._self_instruct,
            "evol_instruct": self._evol,
            "preference_pairs": self._pairs,
            "translate": self._translate,
        }[self.name]
        unit = Unit()
        await handler(index, rows, unit)
        return unit

    # -- asking --------------------------------------------------------------------------------

    async def _reply(self, who: Asks, messages: list[dict[str, str]], sample: int, **sampling: Any) -> str:
        p = self.params
        reply = await who.ask(
            messages,
            sample=sample,
            temperature=sampling.get("temperature", p.temperature),
            top_p=p.top_p,
            max_tokens=sampling.get("max_tokens", p.max_tokens or None),
            seed=p.seed,
        )
        text = reply.text.strip()
        if not text:
            raise ReplyError("EMPTY_REPLY", "the teacher replied with no text")
        return text

    async def _instructed(self, template: str, values: dict[str, str], sample: int = 0) -> str:
        prompt = templates.render(self.templates[template], values)
        return await self._reply(self.teacher, [{"role": "user", "content": prompt}], sample)

    async def _answer_to(self, prompt: list[dict[str, Any]], sample: int = 0, **sampling: Any) -> str:
        """The teacher's answer to a conversation; the `answer` template shapes its last user turn."""
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        values = {"prompt": messages[-1]["content"], "system": "", "conversation": ""}
        values["system"] = next((m["content"] for m in messages if m["role"] == "system"), "")
        values["conversation"] = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        messages[-1] = {"role": "user", "content": templates.render(self.templates["answer"], values)}
        return await self._reply(self.teacher, messages, sample, **sampling)

    async def judge_score(self, generated: Generated, sample: int = 0) -> float | None:
        """The judge's 1-10 score of a generated answer (None when its reply has none)."""
        values = {
            "prompt": generated.prompt,
            "reference": generated.reference or "(none)",
            "answer": generated.text,
            "rubric": self.filters.judge_rubric or DEFAULT_RUBRIC,
        }
        prompt = templates.render(self.templates.get("judge") or templates.DEFAULTS["judge"].text, values)
        reply = await self._reply(
            self.judge, [{"role": "user", "content": prompt}], sample, temperature=0.0, max_tokens=64
        )
        generated.judge_reply = reply[:500]
        score = parse_score(reply)
        return None if score is None else float(score)

    async def _keep(self, unit: Unit, generated: Generated) -> None:
        """Format checks, then the judge's minimum score; the row lands in kept or rejected."""
        problem = format_problem(generated.text, self.filters)
        if problem is not None:
            unit.rejected.append(Rejected(generated, *problem))
            return
        if self.filters.judge_min_score is not None:
            generated.score = await self.judge_score(generated)
            if generated.score is None:
                unit.rejected.append(
                    Rejected(generated, "JUDGE_UNPARSEABLE", "the judge's reply has no score")
                )
                return
            if generated.score < self.filters.judge_min_score:
                unit.rejected.append(
                    Rejected(
                        generated,
                        "JUDGE_SCORE",
                        f"score {generated.score:g} < {self.filters.judge_min_score:g}",
                    )
                )
                return
        unit.generated.append(generated)

    # -- the operations ------------------------------------------------------------------------

    def _prompt(self, row: Row) -> list[dict[str, Any]]:
        return templates.prompt_messages(row, self.source_kind)

    def _reference(self, row: Row) -> str:
        return templates.row_answer(row, self.source_kind)

    async def _answer(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        row = rows[index]
        prompt = self._prompt(row)
        answer = await self._answer_to(prompt)
        out = {"id": f"{row['id']}:answer", "messages": [*prompt, {"role": "assistant", "content": answer}]}
        if self.source_kind == Kind.SFT and row.get("tools"):
            out["tools"] = row["tools"]
        await self._keep(unit, self._made(out, row, answer, prompt))

    def _made(self, out: Row, source: Row, text: str, prompt: list[dict[str, Any]]) -> Generated:
        return Generated(
            row=out,
            source_id=str(source["id"]),
            text=text,
            prompt=prompt[-1]["content"] if prompt else "",
            reference=self._reference(source) if self.source_kind != Kind.SFT else "",
        )

    async def _paraphrase(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        row = rows[index]
        prompt = self._prompt(row)
        values = templates.row_fields(row, self.source_kind)
        for sample in range(self.params.samples):
            rewrite = await self._instructed("paraphrase", values, sample)
            new_prompt = [*prompt[:-1], {"role": "user", "content": rewrite}]
            out: Row = {k: v for k, v in row.items()}
            out["id"] = f"{row['id']}:paraphrase:{sample}"
            text = rewrite
            if self.source_kind == Kind.SFT:
                answer = (
                    await self._answer_to(new_prompt, sample)
                    if self.params.regenerate_answers
                    else self._reference(row)
                )
                text = answer if self.params.regenerate_answers else rewrite
                out["messages"] = [*new_prompt, {"role": "assistant", "content": answer}]
            else:
                out["prompt"] = new_prompt
            await self._keep(unit, self._made(out, row, text, new_prompt))

    def _seed_examples(self, index: int) -> list[Row]:
        chooser = random.Random(self.params.seed * 1_000_003 + index)
        k = min(self.params.examples_per_prompt, len(self.seeds))
        return chooser.sample(list(self.seeds), k)

    async def _new_prompt_row(self, unit: Unit, prompt_text: str, row_id: str, source: Row) -> None:
        prompt = [{"role": "user", "content": prompt_text}]
        if self.params.answer:
            answer = await self._answer_to(prompt)
            out = {"id": row_id, "messages": [*prompt, {"role": "assistant", "content": answer}]}
            await self._keep(unit, Generated(out, str(source["id"]), answer, prompt_text))
        else:
            out = {"id": row_id, "prompt": prompt, "reference": ""}
            await self._keep(unit, Generated(out, str(source["id"]), prompt_text, prompt_text))

    async def _self_instruct(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        examples = self._seed_examples(index)
        shown = "\n\n".join(
            f"Task {i + 1}: {templates.row_fields(r, self.source_kind)['prompt']}"
            for i, r in enumerate(examples)
        )
        values = {**templates.row_fields(examples[0], self.source_kind), "examples": shown}
        new = await self._instructed("self_instruct", values, index)
        await self._new_prompt_row(unit, new, f"self-instruct:{index}", examples[0])

    async def _evol(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        row = rows[index]
        values = templates.row_fields(row, self.source_kind)
        chooser = random.Random(self.params.seed * 1_000_003 + index)
        for round_ in range(self.params.rounds):
            values = {**values, "method": chooser.choice(templates.EVOLUTION_METHODS)}
            values["prompt"] = await self._instructed("evol_instruct", values, round_)
        await self._new_prompt_row(unit, values["prompt"], f"{row['id']}:evol:{self.params.rounds}", row)

    async def _pairs(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        row = rows[index]
        prompt = self._prompt(row)
        candidates: list[Generated] = []
        seen: set[str] = set()
        for sample in range(self.params.samples):
            answer = await self._answer_to(prompt, sample)
            candidate = self._made({"id": f"{row['id']}:sample:{sample}"}, row, answer, prompt)
            problem = format_problem(answer, self.filters)
            if problem is not None:
                unit.rejected.append(Rejected(candidate, *problem))
                continue
            if answer in seen:
                continue  # the same answer twice says nothing about which is better
            seen.add(answer)
            candidate.score = await self.judge_score(candidate, sample)
            if candidate.score is None:
                unit.rejected.append(
                    Rejected(candidate, "JUDGE_UNPARSEABLE", "the judge's reply has no score")
                )
                continue
            candidates.append(candidate)
        if self.out_kind == Kind.UNPAIRED_PREFERENCE:
            for c in candidates:
                c.row = {
                    "id": c.row["id"],
                    "prompt": prompt,
                    "completion": [{"role": "assistant", "content": c.text}],
                    "label": c.score is not None and c.score >= self.params.desirable_score,
                }
                unit.generated.append(c)
            return
        if len(candidates) < 2:
            if candidates:
                unit.rejected.append(
                    Rejected(candidates[0], "NO_PAIR", "fewer than two distinct judged answers")
                )
            return
        ranked = sorted(candidates, key=lambda c: c.score or 0.0, reverse=True)
        best, worst = ranked[0], ranked[-1]
        gap = (best.score or 0.0) - (worst.score or 0.0)
        pair = Generated(
            row={
                "id": f"{row['id']}:pair",
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": best.text}],
                "rejected": [{"role": "assistant", "content": worst.text}],
            },
            source_id=str(row["id"]),
            text=best.text,
            prompt=best.prompt,
            score=best.score,
            extra={"rejected_score": worst.score},
        )
        if gap < self.params.min_score_margin:
            unit.rejected.append(
                Rejected(pair, "NO_PAIR", f"score gap {gap:g} < {self.params.min_score_margin:g}")
            )
        elif self.filters.judge_min_score is not None and (best.score or 0.0) < self.filters.judge_min_score:
            unit.rejected.append(
                Rejected(
                    pair,
                    "JUDGE_SCORE",
                    f"the best answer scored {best.score:g} < {self.filters.judge_min_score:g}",
                )
            )
        else:
            unit.generated.append(pair)

    async def _translate(self, index: int, rows: Sequence[Row], unit: Unit) -> None:
        row = rows[index]
        language = templates.LANGUAGES[self.params.target_language]
        counter = 0

        async def translated(text: str) -> str:
            nonlocal counter
            counter += 1
            if not text.strip():
                return text
            return await self._instructed("translate", {"text": text, "language": language}, counter - 1)

        out: Row = dict(row)
        out["id"] = f"{row['id']}:{self.params.target_language}"
        last = ""
        for key in ("messages", "prompt", "chosen", "rejected", "completion"):
            if isinstance(row.get(key), list):
                messages = []
                for m in row[key]:
                    last = await translated(m["content"])
                    messages.append({**m, "content": last})
                out[key] = messages
        for key in ("text", "reference"):
            if isinstance(row.get(key), str) and row[key]:
                out[key] = last = await translated(row[key])
        if isinstance(row.get("references"), list):
            # `reference` is the first of `references`: translated once.
            out["references"] = [
                out["reference"] if r == row.get("reference") else await translated(r)
                for r in row["references"]
            ]
        prompt = templates.prompt_messages(out, self.out_kind) if self.out_kind != Kind.TEXT else []
        await self._keep(unit, self._made(out, row, last, prompt))
