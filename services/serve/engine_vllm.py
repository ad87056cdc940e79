"""The vLLM engine of a serving process on a GPU: the same interface as `engine.py` (a
`LoadedModel` per base model version, adapters by name, a `Batcher` taking `Request`s whose `emit`
is called as text is generated), over vLLM's `AsyncLLMEngine`, which batches continuously and serves
LoRA adapters of its base through its multi-LoRA support (`enable_lora`, one `LoRARequest` each).

The engine runs on its own thread with its own event loop, so the serving process's loop never
waits on it. Chosen for deployments with engine `vllm`, or `auto` on a process with a GPU and vLLM
installed (`pip install vllm`; not a dependency of the CPU install).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from pathlib import Path
from typing import Any

from services.serve.engine import BASE_ADAPTER, ContextTooLong, Request

__all__ = ["BASE_ADAPTER", "Batcher", "ContextTooLong", "LoadedModel", "Request"]

MAX_LORAS = 8
MAX_LORA_RANK = 64
_lora_ids = itertools.count(1)


class LoadedModel:
    """A base model in vLLM (on this process's GPU), with the adapters registered for it."""

    gpu_memory_utilization = 0.45  # of the GPU, per loaded base (two bases fit one GPU)

    def __init__(self, folder: Path, device: str) -> None:
        from transformers import AutoConfig, AutoTokenizer

        if device != "cuda":
            raise RuntimeError("the vLLM engine needs a CUDA GPU")
        self.folder = folder
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(folder)  # never trust_remote_code
        config = AutoConfig.from_pretrained(folder)
        self.position_limit = int(getattr(config, "max_position_embeddings", 0) or 1 << 20)
        self.adapters: dict[str, Any] = {}  # name -> LoRARequest
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tuneforge-vllm", daemon=True)
        self.thread.start()
        self.engine = self._run(self._start()).result()

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    async def _start(self) -> Any:
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        args = AsyncEngineArgs(
            model=str(self.folder),
            tokenizer=str(self.folder),
            trust_remote_code=False,
            dtype="auto",
            enable_lora=True,
            max_loras=MAX_LORAS,
            max_lora_rank=MAX_LORA_RANK,
            gpu_memory_utilization=self.gpu_memory_utilization,
        )
        return AsyncLLMEngine.from_engine_args(args)

    def add_adapter(self, name: str, folder: Path) -> None:
        from vllm.lora.request import LoRARequest

        with self.lock:
            if name not in self.adapters:
                request = LoRARequest(name, next(_lora_ids), str(folder))
                self._run(self.engine.add_lora(request)).result()
                self.adapters[name] = request

    def remove_adapter(self, name: str) -> None:
        with self.lock:
            request = self.adapters.pop(name, None)
            if request is not None:
                self._run(self.engine.remove_lora(request.lora_int_id)).result()

    def prompt_ids(self, messages: list[dict[str, str]] | None, prompt: str) -> list[int]:
        if messages:
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=True, add_generation_prompt=True, return_dict=True
            )
            return list(rendered["input_ids"])
        return list(self.tokenizer(prompt)["input_ids"])

    def resident_bytes(self) -> int:
        import torch

        return int(torch.cuda.memory_reserved())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.engine.shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)


class Batcher:
    """Hands requests to vLLM, which batches them continuously; streams each one's text back."""

    def __init__(self, loaded: LoadedModel, **_: Any) -> None:
        self.loaded = loaded
        self.batches = 0

    def submit(self, request: Request) -> None:
        asyncio.run_coroutine_threadsafe(self._generate(request), self.loaded.loop)

    def close(self) -> None:
        self.loaded.close()

    async def _generate(self, request: Request) -> None:
        from vllm import SamplingParams

        loaded = self.loaded
        params = SamplingParams(
            max_tokens=request.max_new_tokens,
            temperature=request.temperature,
            top_p=request.top_p if request.temperature > 0 else 1.0,
            stop=request.stop or None,
            seed=request.seed,
        )
        lora = loaded.adapters.get(request.adapter) if request.adapter != BASE_ADAPTER else None
        request_id = uuid.uuid4().hex
        sent, completion, finish = "", 0, "length"
        try:
            async for output in loaded.engine.generate(
                {"prompt_token_ids": request.input_ids}, params, request_id, lora_request=lora
            ):
                if request.cancelled.is_set():
                    await loaded.engine.abort(request_id)
                    finish = "cancelled"
                    break
                piece = output.outputs[0]
                completion = len(piece.token_ids)
                if len(piece.text) > len(sent) and not piece.text.endswith("\ufffd"):
                    request.emit(piece.text[len(sent) :], "", None)
                    sent = piece.text
                if output.finished:
                    finish = "stop" if piece.finish_reason == "stop" else "length"
                    if piece.text != sent:
                        request.emit(piece.text[len(sent) :], "", None)
        except Exception as exc:  # one failed request must not stop the engine
            request.emit("", "error", {"error": str(exc)[:500]})  # type: ignore[dict-item]
            return
        request.emit("", finish, {"prompt_tokens": len(request.input_ids), "completion_tokens": completion})
