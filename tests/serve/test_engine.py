"""The transformers engine on its own: batching changes no answer, each row stops on its own, a
cancelled row stops generating, adapters of one base share it and answer in one mixed batch."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")

from services.serve.engine import BASE_ADAPTER, Batcher, LoadedModel, Request


def run(batcher: Batcher, requests: list[dict]) -> list[tuple[str, str, dict]]:
    """Submit all at once; return (text, finish_reason, usage) per request."""
    results: list[list] = [[[], "", {}] for _ in requests]
    done = [threading.Event() for _ in requests]

    def emit_for(i: int):  # type: ignore[no-untyped-def]
        def emit(delta: str, finish: str, usage: dict | None) -> None:
            results[i][0].append(delta)
            if finish:
                results[i][1], results[i][2] = finish, usage or {}
                done[i].set()

        return emit

    jobs = [Request(emit=emit_for(i), **spec) for i, spec in enumerate(requests)]
    for job in jobs:
        batcher.submit(job)
    for event in done:
        assert event.wait(60)
    return [("".join(t), f, u) for t, f, u in results]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> LoadedModel:
    return LoadedModel(tiny_model_dir, "cpu")


def spec(loaded: LoadedModel, text: str, **overrides: object) -> dict:
    return {
        "adapter": BASE_ADAPTER,
        "input_ids": loaded.prompt_ids([{"role": "user", "content": text}], ""),
        "max_new_tokens": 12,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": [],
        "seed": None,
        **overrides,
    }


def test_a_batch_answers_exactly_as_one_request_at_a_time(loaded: LoadedModel) -> None:
    prompts = ["请判断学生的答案是否正确", "短", "作文批改：这是一篇很长的作文，共有三段，结尾点题。"]
    alone = Batcher(loaded, max_batch=1, window=0)
    together = Batcher(loaded, max_batch=8, window=0.2)
    try:
        one_by_one = [run(alone, [spec(loaded, p)])[0] for p in prompts]
        batched = run(together, [spec(loaded, p) for p in prompts])
    finally:
        alone.close()
        together.close()
    assert [t for t, _, _ in batched] == [t for t, _, _ in one_by_one], (
        "left padding changes no greedy answer"
    )
    assert together.batches == 1, "requests that arrived together were generated in one batch"
    assert all(u["completion_tokens"] <= 12 and u["prompt_tokens"] > 0 for _, _, u in batched)


def test_each_row_stops_on_its_own(loaded: LoadedModel) -> None:
    batcher = Batcher(loaded, max_batch=8, window=0.2)
    try:
        free = run(batcher, [spec(loaded, "写一首诗", max_new_tokens=20)])[0]
        cut = free[0][2:4] if len(free[0]) >= 4 else free[0][-1:]
        short, stopped = run(
            batcher,
            [
                spec(loaded, "写一首诗", max_new_tokens=3),
                spec(loaded, "写一首诗", max_new_tokens=20, stop=[cut]),
            ],
        )
    finally:
        batcher.close()
    assert short[1] == "length" and short[2]["completion_tokens"] == 3
    assert stopped[1] == "stop" and cut not in stopped[0] and free[0].startswith(stopped[0])


def test_a_row_cancelled_mid_answer_stops_generating(loaded: LoadedModel) -> None:
    batcher = Batcher(loaded, max_batch=8, window=0.0)
    first, finished = threading.Event(), threading.Event()
    outcome: dict = {}

    def emit(delta: str, finish: str, usage: dict | None) -> None:
        if delta:
            first.set()
        if finish:
            outcome.update(finish=finish, usage=usage)
            finished.set()

    job = Request(emit=emit, **spec(loaded, "写一首很长的诗", max_new_tokens=2000))
    try:
        batcher.submit(job)
        assert first.wait(30)
        job.cancelled.set()  # the client went away
        assert finished.wait(30)
        assert run(batcher, [spec(loaded, "hi", max_new_tokens=2)])[0][1] == "length", "the engine serves on"
    finally:
        batcher.close()
    assert outcome["finish"] == "cancelled" and outcome["usage"]["completion_tokens"] < 2000


def make_adapter(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter of the tiny model with random (not zero) weights, so it changes answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def test_adapters_share_one_base_and_answer_in_one_mixed_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = LoadedModel(tiny_model_dir, "cpu")
    base_bytes = loaded.resident_bytes()
    loaded.add_adapter("a1", make_adapter(tiny_model_dir, tmp_path / "a1", 1))
    loaded.add_adapter("a2", make_adapter(tiny_model_dir, tmp_path / "a2", 2))
    assert loaded.resident_bytes() < base_bytes * 1.2, "two adapters add a fraction of one base"
    prompt = "请判断学生的答案是否正确"
    alone = Batcher(loaded, max_batch=1, window=0)
    together = Batcher(loaded, max_batch=8, window=0.2)
    try:
        each = {a: run(alone, [spec(loaded, prompt, adapter=a)])[0][0] for a in ("a1", "a2", BASE_ADAPTER)}
        mixed = run(together, [spec(loaded, prompt, adapter=a) for a in ("a1", "a2", BASE_ADAPTER)])
        assert len(set(each.values())) == 3, "each adapter (and the bare base) answers its own way"
        assert [t for t, _, _ in mixed] == list(each.values()) and together.batches == 1
        # Adapters come and go while the base stays: the last one removed, then one loaded again.
        loaded.remove_adapter("a1")
        loaded.remove_adapter("a2")
        assert run(alone, [spec(loaded, prompt)])[0][0] == each[BASE_ADAPTER]
        loaded.add_adapter("a2", tmp_path / "a2")
        assert run(alone, [spec(loaded, prompt, adapter="a2")])[0][0] == each["a2"]
    finally:
        alone.close()
        together.close()
