"""The transformers engine of a serving process (CPU, or a GPU without vLLM).

One `LoadedModel` per base model version in memory; LoRA adapters of that base are loaded into it
by name (PEFT), so several adapter deployments share one copy of the base, and one batch may mix
them (`adapter_names`). A `Batcher` per loaded model runs generation on its own thread: requests that
arrive within `window` of each other (up to `max_batch`) are generated together, left-padded, each
row stopping on its own (end of sequence, its `max_tokens`, a stop string), each streamed as it goes.

transformers' continuous-batching API is not used: it takes one generation config for all requests
and knows no PEFT adapters, and this engine needs both per request.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel  # imported with the engine: every serving process may load adapters
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

BASE_ADAPTER = "__base__"
# Emit(delta, finish_reason, usage): called on the batcher's thread.
Emit = Callable[[str, str, dict[str, int] | None], None]


class ContextTooLong(ValueError):
    def __init__(self, prompt_tokens: int, max_tokens: int, limit: int) -> None:
        super().__init__(
            f"this deployment's context is {limit} tokens; the prompt is {prompt_tokens} tokens and max_tokens "
            f"{max_tokens}: shorten the prompt or lower max_tokens"
        )
        self.prompt_tokens, self.max_tokens, self.limit = prompt_tokens, max_tokens, limit


@dataclass
class Request:
    """One generation, as the batcher runs it."""

    adapter: str  # an adapter's name, or BASE_ADAPTER
    input_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    emit: Emit
    cancelled: threading.Event = field(default_factory=threading.Event)

    def group(self) -> tuple[Any, ...]:
        """Requests with the same key can share a batch (sampling settings are per batch)."""
        if self.temperature <= 0:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", id(self))  # a seeded request runs alone, so its seed means something
        return ("sample", round(self.temperature, 4), round(self.top_p, 4))


class LoadedModel:
    """A base model in memory, with the LoRA adapters loaded into it."""

    def __init__(self, folder: Path, device: str) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)  # never trust_remote_code
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
        config = AutoConfig.from_pretrained(folder)
        self.position_limit = int(getattr(config, "max_position_embeddings", 0) or 1 << 20)
        self.device = device
        self.adapters: set[str] = set()
        self.lock = threading.Lock()

    def add_adapter(self, name: str, folder: Path) -> None:
        with self.lock:
            if name in self.adapters:
                return
            if not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=name).eval()
            else:
                self.model.load_adapter(folder, adapter_name=name)
            self.adapters.add(name)

    def remove_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self.adapters:
                return
            self.adapters.discard(name)
            if self.adapters:
                self.model.delete_adapter(name)
            else:  # the last one: back to the bare base, without the LoRA layers
                self.model = self.model.unload().eval()

    def prompt_ids(self, messages: list[dict[str, str]] | None, prompt: str) -> list[int]:
        if messages:
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True, return_dict=True
            )
            return list(rendered["input_ids"])
        return list(self.tokenizer(prompt)["input_ids"])

    def resident_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


class _Rows(BaseStreamer, StoppingCriteria):
    """Follows each row of a batch: decodes its new tokens, stops it on end of sequence, its own
    `max_tokens` or a stop string, and emits its text as it grows."""

    def __init__(self, tokenizer: Any, requests: list[Request]) -> None:
        self.tokenizer = tokenizer
        self.requests = requests
        self.tokens: list[list[int]] = [[] for _ in requests]
        self.sent = [""] * len(requests)
        self.done = [False] * len(requests)
        self.prompt_seen = False
        self.eos = set(_as_list(tokenizer.eos_token_id))

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(len(self.requests), -1)[:, -1].tolist()):
            if self.done[i]:
                continue
            request = self.requests[i]
            if request.cancelled.is_set():
                self._finish(i, "cancelled")
                continue
            if token in self.eos:
                self._finish(i, "stop")
                continue
            self.tokens[i].append(token)
            self._emit(i)
            if not self.done[i] and len(self.tokens[i]) >= request.max_new_tokens:
                self._finish(i, "length")

    def _emit(self, i: int) -> None:
        text = self.tokenizer.decode(self.tokens[i], skip_special_tokens=True)
        for stop in self.requests[i].stop:
            at = text.find(stop)
            if at >= 0:
                self._send(i, text[:at])
                self._finish(i, "stop", sent=True)
                return
        if text.endswith("\ufffd"):
            return  # a character split across tokens: wait for the rest of it
        # Hold back a tail that could still become a stop string.
        hold = max((len(s) - 1 for s in self.requests[i].stop), default=0)
        self._send(i, text[: len(text) - hold] if hold else text)

    def _send(self, i: int, text: str) -> None:
        if len(text) > len(self.sent[i]) and text.startswith(self.sent[i]):
            self.requests[i].emit(text[len(self.sent[i]) :], "", None)
            self.sent[i] = text

    def _finish(self, i: int, reason: str, *, sent: bool = False) -> None:
        if not sent and reason != "cancelled":
            self._send(i, self.tokenizer.decode(self.tokens[i], skip_special_tokens=True))
        self.done[i] = True
        usage = {"prompt_tokens": len(self.requests[i].input_ids), "completion_tokens": len(self.tokens[i])}
        self.requests[i].emit("", reason, usage)

    def end(self) -> None:
        for i in range(len(self.requests)):
            if not self.done[i]:
                self._finish(i, "length")

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class Batcher:
    """Generates one loaded model's requests on a thread, batching those that arrive together.

    A request waits up to `window` for company while the engine is under load (it generated within
    the last second); at an idle engine it starts at once unless `wait_when_idle`, so a lone
    user pays no batching delay.
    """

    BUSY_SECONDS = 1.0

    def __init__(
        self, loaded: LoadedModel, *, max_batch: int = 16, window: float = 0.01, wait_when_idle: bool = True
    ) -> None:
        self.loaded = loaded
        self.max_batch = max_batch
        self.window = window
        self.wait_when_idle = wait_when_idle
        self.last_busy = -self.BUSY_SECONDS
        self.queue: queue.Queue[Request | None] = queue.Queue()
        self.batches = 0
        self.thread = threading.Thread(target=self._loop, name="tuneforge-batcher", daemon=True)
        self.thread.start()

    def submit(self, request: Request) -> None:
        self.queue.put(request)

    def close(self) -> None:
        self.queue.put(None)

    def _collect(self) -> list[Request] | None:
        first = self.queue.get()
        if first is None:
            return None
        batch = [first]
        busy = time.monotonic() - self.last_busy < self.BUSY_SECONDS
        deadline = time.monotonic() + (self.window if busy or self.wait_when_idle else 0.0)
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self.queue.get(timeout=max(remaining, 0)) if remaining > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.queue.put(None)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            groups: dict[tuple[Any, ...], list[Request]] = {}
            for request in batch:
                if not request.cancelled.is_set():
                    groups.setdefault(request.group(), []).append(request)
            for group in groups.values():
                try:
                    self._run(group)
                except Exception as exc:  # one bad batch must not stop the engine
                    for request in group:
                        request.emit("", "error", {"error": str(exc)[:500]})  # type: ignore[dict-item]

    @torch.no_grad()
    def _run(self, requests: list[Request]) -> None:
        loaded = self.loaded
        tokenizer = loaded.tokenizer
        width = max(len(r.input_ids) for r in requests)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r.input_ids)) + r.input_ids for r in requests])
        attention = torch.tensor(
            [[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in requests]
        )
        rows = _Rows(tokenizer, requests)
        first = requests[0]
        sampling: dict[str, Any] = {"do_sample": False}
        if first.temperature > 0:
            sampling = {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p}
            if first.seed is not None:
                torch.manual_seed(first.seed)
        extra: dict[str, Any] = {}
        self.batches += 1  # counted before the rows finish: a caller may look as soon as they do
        with loaded.lock:
            if loaded.adapters:
                extra["adapter_names"] = [r.adapter for r in requests]
            loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=attention.to(loaded.device),
                max_new_tokens=max(r.max_new_tokens for r in requests),
                pad_token_id=pad,
                streamer=rows,
                stopping_criteria=StoppingCriteriaList([rows]),
                **sampling,
                **extra,
            )
        self.last_busy = time.monotonic()
