"""What the serving benchmarks share: a small Llama built from a config (random weights, a tokenizer
trained on the project's text), LoRA adapters of it, a local suite with the registry and the serve
service, and clients that call a deployment through the official `openai` client."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROMPTS = [
    "请判断学生的答案是否正确：3+5=8",
    "作文批改：这是一篇关于春天的作文，共三段，结尾点题。",
    "请把这句话翻译成英文：今天天气很好。",
    "总结下面的内容：模型训练需要高质量的数据。",
]


def build_model(folder: Path, hidden: int, layers: int) -> Path:
    from services.data.presets import project_texts
    from services.train.tiny import build_tiny_model

    if not (folder / "config.json").exists():
        build_tiny_model(
            folder, project_texts(), hidden_size=hidden, layers=layers, heads=max(4, hidden // 64)
        )
    return folder


def make_adapter(base: Path, folder: Path, seed: int, rank: int = 8) -> Path:
    """A LoRA adapter with random (not zero) weights on every projection, as training leaves one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
    )
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def merged(base: Path, adapter: Path, folder: Path) -> Path:
    """The adapter merged into a full copy of the base (what a separate deployment would serve)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@contextlib.contextmanager
def serving_suite(root: Path, **env: str) -> Iterator[object]:
    from services.suite.suite import LocalSuite

    with LocalSuite(root, services=("registry", "serve"), extra_env=env) as suite:
        yield suite


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Run:
    seconds: float
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000


def call_concurrently(
    base_url: str,
    api_key: str,
    project: str,
    models: Sequence[str],
    clients: int,
    per_client: int,
    max_tokens: int,
    *,
    offset: int = 0,
) -> Run:
    """`clients` threads, each sending `per_client` chats one after another (client i calls
    `models[i % len(models)]`); completion tokens over wall time."""
    import openai

    oc = openai.OpenAI(base_url=base_url, api_key=api_key, project=project, max_retries=0, timeout=600)
    lock = threading.Lock()
    run = Run(0.0)

    def client(index: int) -> None:
        for k in range(per_client):
            prompt = [{"role": "user", "content": PROMPTS[(offset + index + k) % len(PROMPTS)]}]
            started = time.perf_counter()
            try:
                answer = oc.chat.completions.create(
                    model=models[index % len(models)], messages=prompt, max_tokens=max_tokens, temperature=0
                )
            except Exception as error:  # counted, reported
                with lock:
                    run.failures.append(repr(error))
                continue
            with lock:
                run.latencies.append(time.perf_counter() - started)
                run.completion_tokens += answer.usage.completion_tokens

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    return run
