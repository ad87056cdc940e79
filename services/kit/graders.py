"""OpenAI's grader JSON, run here: as evaluation metrics (the eval service) and as GRPO rewards (the
training runner), with the same definitions.

A grader is the JSON object OpenAI's fine-tuning and Evals APIs take, unchanged:

- `string_check`: `input` and `reference` templates, `operation` `eq`, `ne`, `like` (the reference
  occurs in the input) or `ilike` (ignoring case) → 1 or 0.
- `text_similarity`: `input`, `reference`, `evaluation_metric`: `bleu` (sentence BLEU-4, NLTK's
  smoothing 3), `gleu` (NLTK), `meteor` (exact and stem matches), `rouge_1` … `rouge_5`, `rouge_l`
  (F1), `fuzzy_match` (rapidfuzz's `fuzz.ratio`), `cosine` (sentence embeddings, the eval service's
  embedding model) → 0-1, tokenized as the evaluation metrics are (CJK characters or jieba words
  for Chinese; `services/kit/textmetrics.py`). `pass_threshold` sets the pass rate's threshold.
- `score_model`: `input` messages (templates in their contents) sent to `model` through an
  OpenAI-compatible chat API (a serve deployment or any other), `range` (default [0, 1]) and
  `sampling_params`; the reply's number (a JSON `result`/`score`, else the first number) is the score.
- `python`: `source` defining `grade(sample, item) -> float`, run in the sandbox (`sandbox.py`).
- `multi`: `graders` by name and `calculate_output`, a formula over their names with + - * / ^ and
  min, max, abs, floor, ceil, exp, sqrt, log.

Templates are `{{ sample.output_text }}`, `{{ sample.output_json.FIELD }}` and `{{ item.FIELD }}`
(dotted paths); `item` is the row: its `reference`, `references`, `prompt` (the last user turn) and
every extra field of the file. A sample a grader cannot score (a field missing, a reply without a
number, a python error) is unscored with its reason counted, never 0.

    check(spec, "evaluation.graders[0]")  # the normalized grader, or GraderError naming the field
    grade(spec, samples, judge=...)       # Graded(scores, errors)
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.kit import sandbox, textmetrics

TYPES = ("string_check", "text_similarity", "score_model", "python", "multi")
OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY = (
    "bleu",
    "gleu",
    "meteor",
    "cosine",
    "fuzzy_match",
    "rouge_l",
    *(f"rouge_{n}" for n in range(1, 6)),
)
_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"(sample|item)((?:\.[A-Za-z_][\w-]*)*)$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
}
_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
MAX_DEPTH = 4

# (model, messages, sampling_params) -> the reply's text.
Judge = Callable[[str, list[dict[str, str]], Mapping[str, Any]], str]


class GraderError(ValueError):
    """A grader that cannot run: `field` names where (e.g. `graders[0].evaluation_metric`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Sample:
    """One model output and its row (`item`: reference, references, prompt and extra fields)."""

    output_text: str
    item: Mapping[str, Any]

    def namespace(self) -> dict[str, Any]:
        try:
            output_json = json.loads(self.output_text)
        except ValueError:
            output_json = None
        return {"sample": {"output_text": self.output_text, "output_json": output_json}, "item": self.item}


@dataclass
class Graded:
    scores: list[float | None]
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, index: int, reason: str) -> None:
        self.scores[index] = None
        self.errors[reason] = self.errors.get(reason, 0) + 1


# -- checking -------------------------------------------------------------------------------------


def _text(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise GraderError(
            f"{where}.{key}", "is required (a string; templates such as {{ sample.output_text }})"
        )
    _check_templates(value, f"{where}.{key}")
    return value


def _check_templates(text: str, where: str) -> None:
    for match in _TEMPLATE.finditer(text):
        if not _PATH.match(match.group(1)):
            raise GraderError(
                where, f"{{{{ {match.group(1)} }}}} is not sample.output_text, sample.output_json.… or item.…"
            )


def check(spec: Any, where: str = "grader", depth: int = 0) -> dict[str, Any]:
    """The grader as given, checked: every field it needs, of the right type, with known values."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise GraderError(where, f"is not JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise GraderError(where, "must be a JSON object with a `type`")
    kind = spec.get("type")
    if kind == "label_model":
        raise GraderError(f"{where}.type", "label_model is not supported here; use score_model")
    if kind not in TYPES:
        raise GraderError(f"{where}.type", f"{kind!r} is not a grader type; use {', '.join(TYPES)}")
    name = spec.get("name", kind)
    if not isinstance(name, str) or not re.fullmatch(r"[\w .-]{1,64}", name):
        raise GraderError(f"{where}.name", "must be 1-64 letters, digits, spaces, '.', '_' or '-'")
    out = {**spec, "name": name}
    if kind in ("string_check", "text_similarity"):
        _text(spec, "input", where), _text(spec, "reference", where)
    if kind == "string_check" and spec.get("operation") not in OPERATIONS:
        raise GraderError(f"{where}.operation", f"must be one of {', '.join(OPERATIONS)}")
    if kind == "text_similarity" and spec.get("evaluation_metric") not in SIMILARITY:
        raise GraderError(f"{where}.evaluation_metric", f"must be one of {', '.join(SIMILARITY)}")
    if "pass_threshold" in spec and not _finite(spec["pass_threshold"]):
        raise GraderError(f"{where}.pass_threshold", "must be a finite number")
    if kind == "score_model":
        _check_score_model(spec, where)
        out["range"] = list(spec.get("range") or [0, 1])
    if kind == "python":
        problem = sandbox.check(spec.get("source") or "")
        if problem:
            raise GraderError(f"{where}.source", problem)
    if kind == "multi":
        _check_multi(spec, where, depth)
    return out


def asks_judge(spec: Mapping[str, Any]) -> bool:
    """Whether the (checked) grader, or one inside it, is a score_model."""
    return spec["type"] == "score_model" or any(
        asks_judge(check(g)) for g in (spec.get("graders") or {}).values()
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_score_model(spec: Mapping[str, Any], where: str) -> None:
    if not isinstance(spec.get("model"), str) or not spec["model"]:
        raise GraderError(f"{where}.model", "is required: the model name the judge's API serves")
    messages = spec.get("input")
    if not isinstance(messages, list) or not messages:
        raise GraderError(f"{where}.input", "must be a list of {role, content} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise GraderError(f"{where}.input[{i}].role", "must be system, developer, user or assistant")
        _text(m, "content", f"{where}.input[{i}]")
    low, high = spec.get("range") or [0, 1]
    if not (_finite(low) and _finite(high) and low < high):
        raise GraderError(f"{where}.range", "must be [low, high] with low < high")
    if not isinstance(spec.get("sampling_params") or {}, dict):
        raise GraderError(f"{where}.sampling_params", "must be an object")


def _check_multi(spec: Mapping[str, Any], where: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise GraderError(where, f"graders nest at most {MAX_DEPTH} levels deep")
    graders = spec.get("graders")
    if not isinstance(graders, dict) or not graders:
        raise GraderError(f"{where}.graders", "must be an object of graders by name")
    for key, sub in graders.items():
        if not key.isidentifier():
            raise GraderError(f"{where}.graders.{key}", "a name the formula can use (letters, digits, _)")
        check(sub, f"{where}.graders.{key}", depth + 1)
    formula = spec.get("calculate_output")
    if not isinstance(formula, str) or not formula.strip():
        raise GraderError(f"{where}.calculate_output", "is required: a formula over the graders' names")
    try:
        tree = ast.parse(formula.replace("^", "**"), mode="eval")
        _formula(tree.body, dict.fromkeys(graders, 1.0), dry=True)
    except (SyntaxError, ValueError) as exc:
        raise GraderError(f"{where}.calculate_output", str(exc)) from None


def _formula(node: ast.AST, values: Mapping[str, float], dry: bool = False) -> float:
    """The formula's value: numbers, grader names, + - * / ** and the allowed functions only."""
    if isinstance(node, ast.Constant) and _finite(node.value):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise ValueError(f"{node.id!r} is not one of the graders ({', '.join(values)})")
        return values[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _formula(node.operand, values, dry)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        a, b = _formula(node.left, values, dry), _formula(node.right, values, dry)
        return 1.0 if dry else _OPERATORS[type(node.op)](a, b)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords or not node.args:
            raise ValueError(f"{node.func.id}() takes one or more numbers")
        args = [_formula(a, values, dry) for a in node.args]
        return 1.0 if dry else float(_FUNCTIONS[node.func.id](*args))
    raise ValueError(
        f"{ast.unparse(node)!r} is not allowed: use numbers, grader names, + - * / ^ and "
        f"{', '.join(_FUNCTIONS)}"
    )


# -- grading --------------------------------------------------------------------------------------


class _Missing(Exception):
    pass


def render(template: str, namespace: Mapping[str, Any]) -> str:
    """The template with each {{ path }} replaced by its value (JSON for non-strings)."""

    def value(match: re.Match[str]) -> str:
        path = match.group(1)
        current: Any = namespace
        for part in path.split("."):
            if not isinstance(current, Mapping) or part not in current or current[part] is None:
                raise _Missing(f"{{{{ {path} }}}} is missing")
            current = current[part]
        return current if isinstance(current, str) else json.dumps(current, ensure_ascii=False)

    return _TEMPLATE.sub(value, template)


def grade(
    spec: Mapping[str, Any],
    samples: Sequence[Sample],
    *,
    judge: Judge | None = None,
    embed: Callable[[list[str], list[str]], list[float]] | None = None,
) -> Graded:
    """Each sample's score by the (checked) grader; `judge` answers score_model prompts, `embed`
    gives cosine similarities (default: the local sentence-embedding model)."""
    kind = spec["type"]
    out = Graded([None] * len(samples))
    if kind == "multi":
        return _multi(spec, samples, out, judge, embed)
    if kind == "python":
        graded = sandbox.grade_items(
            spec["source"],
            [(ns["sample"], ns["item"]) for ns in (s.namespace() for s in samples)],
            timeout_seconds=float(spec.get("timeout_seconds") or sandbox.DEFAULT_TIMEOUT),
            memory_mb=int(spec.get("memory_mb") or sandbox.DEFAULT_MEMORY_MB),
        )
        return Graded(list(graded.scores), dict(graded.errors))
    pairs: list[tuple[int, str, str]] = []
    for i, sample in enumerate(samples):
        namespace = sample.namespace()
        try:
            if kind == "score_model":
                out.scores[i] = _score_model(spec, namespace, judge)
            else:
                pairs.append((i, render(spec["input"], namespace), render(spec["reference"], namespace)))
        except (_Missing, _Unscored) as exc:
            out.fail(i, str(exc))
    if kind == "string_check":
        for i, text, reference in pairs:
            out.scores[i] = _string_check(spec["operation"], text, reference)
    elif kind == "text_similarity":
        _similarity(spec["evaluation_metric"], pairs, out, embed)
    return out


def _string_check(operation: str, text: str, reference: str) -> float:
    if operation == "eq":
        return float(text == reference)
    if operation == "ne":
        return float(text != reference)
    if operation == "like":
        return float(reference in text)
    return float(reference.lower() in text.lower())


def _similarity(
    metric: str,
    pairs: list[tuple[int, str, str]],
    out: Graded,
    embed: Callable[[list[str], list[str]], list[float]] | None,
) -> None:
    if metric == "cosine":
        if pairs:
            distances = (embed or textmetrics.embedding_distances)(
                [p[1] for p in pairs], [p[2] for p in pairs]
            )
            for (i, _, _), distance in zip(pairs, distances, strict=True):
                out.scores[i] = 1 - distance
        return
    for i, text, reference in pairs:
        pair = textmetrics.Pair.of(text, reference)
        if metric == "bleu":
            value = textmetrics.bleu4(text, reference) / 100
        elif metric == "gleu":
            value = textmetrics.gleu(pair)
        elif metric == "meteor":
            value = textmetrics.meteor(pair) / 100
        elif metric == "fuzzy_match":
            value = textmetrics.fuzzy_match(pair)
        elif metric in ("rouge_1", "rouge_2", "rouge_l"):
            value = pair.rouge[metric] / 100
        else:
            value = textmetrics.rouge_n(pair, int(metric[-1]))
        out.scores[i] = value


class _Unscored(Exception):
    pass


def _score_model(spec: Mapping[str, Any], namespace: Mapping[str, Any], judge: Judge | None) -> float:
    if judge is None:
        raise _Unscored("no judge endpoint to ask")
    messages = [{"role": m["role"], "content": render(m["content"], namespace)} for m in spec["input"]]
    try:
        reply = judge(spec["model"], messages, spec.get("sampling_params") or {})
    except OSError as exc:
        raise _Unscored(f"the judge could not be reached: {type(exc).__name__}") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise _Unscored("the judge's API answered with no chat completion") from None
    value = _reply_number(reply)
    if value is None:
        raise _Unscored("the judge's reply holds no number")
    low, high = spec["range"]
    if not low <= value <= high:
        raise _Unscored(f"the judge's score is outside the range [{low}, {high}]")
    return value


def _reply_number(reply: str) -> float | None:
    start, end = reply.find("{"), reply.rfind("}")
    if 0 <= start < end:
        try:
            value = json.loads(reply[start : end + 1])
        except ValueError:
            value = None
        if isinstance(value, dict):
            for key in ("result", "score", "steps_result"):
                if _finite(value.get(key)):
                    return float(value[key])
    match = _NUMBER.search(reply)
    return float(match.group()) if match else None


def _multi(
    spec: Mapping[str, Any],
    samples: Sequence[Sample],
    out: Graded,
    judge: Judge | None,
    embed: Callable[[list[str], list[str]], list[float]] | None,
) -> Graded:
    parts = {
        name: grade(check(sub), samples, judge=judge, embed=embed) for name, sub in spec["graders"].items()
    }
    tree = ast.parse(spec["calculate_output"].replace("^", "**"), mode="eval").body
    for name, part in parts.items():
        for reason, count in part.errors.items():
            out.errors[f"{name}: {reason}"] = out.errors.get(f"{name}: {reason}", 0) + count
    for i in range(len(samples)):
        values = {name: part.scores[i] for name, part in parts.items()}
        if any(v is None for v in values.values()):
            continue
        try:
            value = _formula(tree, values)  # type: ignore[arg-type]
        except (ArithmeticError, ValueError):
            out.fail(i, "calculate_output has no value here (division by zero or a domain error)")
            continue
        if math.isfinite(value):
            out.scores[i] = value
        else:
            out.fail(i, "calculate_output is not finite here")
    return out


def openai_judge(
    endpoint: str, api_key: str = "", timeout: float = 120.0, headers: Mapping[str, str] | None = None
) -> Judge:
    """A `Judge` over an OpenAI-compatible chat completions API at `endpoint` (…/v1), with extra
    `headers` (OpenAI's `OpenAI-Project`, for one)."""
    import urllib.request

    def ask(model: str, messages: list[dict[str, str]], sampling: Mapping[str, Any]) -> str:
        body = {
            "model": model,
            "messages": messages,
            "temperature": sampling.get("temperature", 0),
            "max_tokens": sampling.get("max_completions_tokens") or sampling.get("max_tokens") or 64,
            **({"top_p": sampling["top_p"]} if "top_p" in sampling else {}),
            **({"seed": sampling["seed"]} if "seed" in sampling else {}),
        }
        request = urllib.request.Request(
            endpoint.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return str(json.loads(response.read())["choices"][0]["message"]["content"] or "")

    return ask
