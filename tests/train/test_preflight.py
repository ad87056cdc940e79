"""The pre-flight check: each failure class it knows, on real tokenizers, configs and models, found
before a training step; and through the service, `train check` passing and a broken model refused
before any step (the same check every job runs first)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from services.kit.rows import Kind
from services.train import preflight
from services.train.spec import Hyperparameters, JobSpec
from tests.cli.test_cli import tf  # noqa: F401 (a fixture)
from tuneforge import Client
from tuneforge.api.training import STATE_NAMES

ROWS = [
    {
        "id": "a",
        "messages": [{"role": "user", "content": "一加一等于几？"}, {"role": "assistant", "content": "二。"}],
    },
    {
        "id": "b",
        "messages": [
            {"role": "user", "content": "What is two plus two?"},
            {"role": "assistant", "content": "Four."},
        ],
    },
]
TOOLS = json.dumps([{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}])


@pytest.fixture
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def spec(**hp) -> JobSpec:
    return JobSpec(
        base_model="local:///m",
        method="sft",
        tuning="full",
        training_data=[],
        hyperparameters=Hyperparameters(**hp),
    )


def test_the_tiny_model_passes_every_check(tiny_model_dir: Path, tokenizer) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert preflight.vocabulary(tokenizer, config, ROWS) == []
    assert preflight.templates(Kind.SFT, tokenizer, [*ROWS, {**ROWS[0], "id": "t", "tools": TOOLS}]) == []
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert preflight.packing(model, tokenizer, ROWS) == []


def test_a_tokenizer_larger_than_the_embedding(tiny_model_dir: Path, tokenizer) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.vocab_size = len(tokenizer) - 8
    [finding] = [
        f for f in preflight.vocabulary(tokenizer, config, []) if "tokens and the model" in f.message
    ]
    assert finding.check == "vocabulary" and f"has {len(tokenizer)} tokens" in finding.message


def test_no_chat_template(tokenizer) -> None:
    tokenizer.chat_template = None
    [finding] = preflight.templates(Kind.SFT, tokenizer, ROWS)
    assert finding.check == "chat_template" and "no chat template" in finding.message
    assert preflight.templates(Kind.TEXT, tokenizer, [{"id": "x", "text": "plain"}]) == []


def test_a_template_that_ignores_tools(tokenizer) -> None:
    tokenizer.chat_template = tokenizer.chat_template.replace("{% if tools %}", "{% if false %}")
    [finding] = preflight.templates(Kind.SFT, tokenizer, [{**ROWS[0], "tools": TOOLS}])
    assert "ignores them" in finding.message and "row a" in finding.message


def test_a_template_whose_prompt_is_not_a_prefix(tokenizer) -> None:
    # Without generation markers, and a generation prompt unlike the assistant turn's own header.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    )
    [finding] = preflight.templates(
        Kind.PREFERENCE,
        tokenizer,
        [
            {
                "id": "p",
                "prompt": ROWS[0]["messages"][:1],
                "chosen": ROWS[0]["messages"][1:],
                "rejected": [{"role": "assistant", "content": "三。"}],
            }
        ],
    )
    assert "renders the prompt differently" in finding.message


def test_a_template_that_fails_to_render(tokenizer) -> None:
    tokenizer.chat_template = "{{ messages[0]['content'] | nosuchfilter }}"
    [finding] = preflight.templates(Kind.SFT, tokenizer, ROWS)
    assert "the chat template fails" in finding.message


def test_generation_markers_that_miss_turns(tokenizer) -> None:
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|assistant|>' }}"
        "{% if loop.last %}{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}"
        "{% else %}{{ m['content'] + eos_token }}{% endif %}"
        "{% else %}{{ '<|' + m['role'] + '|>' + m['content'] + '\\n' }}{% endif %}{% endfor %}"
    )
    two_turns = {"id": "m", "messages": [*ROWS[0]["messages"], *ROWS[1]["messages"]]}
    [finding] = preflight.templates(Kind.SFT, tokenizer, [two_turns])
    assert "marks 1 assistant spans for 2 assistant turns" in finding.message


def test_packing_on_a_model_without_position_ids_is_refused(tmp_path: Path, tokenizer) -> None:
    # BLOOM's ALiBi attention takes no position ids: TRL's padding-free rows would see each other.
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(
        BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=2)
    ).eval()
    [finding] = preflight.packing(model, tokenizer, ROWS)
    assert finding.check == "packing" and finding.field == "hyperparameters.packing"
    assert "BloomForCausalLM" in finding.message


def test_memory_refused_with_the_numbers_and_a_setting_that_fits(tiny_model_dir: Path) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    job = spec(batch_size=16)
    found, need, _, suggestion = preflight.memory(
        config, job, 512, cuda=False, dtype_bytes=4, available=10**12
    )
    assert found == [] and need.total > need.weights > 0
    small = need.total // 2
    [finding], _, _, suggestion = preflight.memory(
        config, job, 512, cuda=False, dtype_bytes=4, available=small
    )
    assert finding.check == "memory" and "GiB" in finding.message and "the machine has" in finding.message
    assert "gradient_accumulation_steps" in suggestion and finding.field == "hyperparameters.batch_size"
    # nothing fits: the message says so
    [nothing], _, _, none = preflight.memory(
        config, job, 512, cuda=False, dtype_bytes=4, available=need.weights // 4
    )
    assert none == "" and "no smaller batch fits" in nothing.message
    # the counts read from the safetensors headers are the meta model's, and peft's for LoRA
    from peft import LoraConfig, get_peft_model

    lora_job = replace(job, tuning="lora")
    assert preflight.parameter_counts(config, job, tiny_model_dir) == preflight.parameter_counts(config, job)
    _, trainable = preflight.parameter_counts(config, lora_job, tiny_model_dir)
    wrapped = get_peft_model(
        AutoModelForCausalLM.from_config(config),
        LoraConfig(task_type="CAUSAL_LM", r=8, target_modules="all-linear"),
    )
    assert trainable == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    # LoRA trains far fewer parameters than full tuning
    lora = replace(job, tuning="lora")
    _, lora_need, _, _ = preflight.memory(config, lora, 512, cuda=False, dtype_bytes=4, available=10**12)
    assert lora_need.optimizer < need.optimizer / 5


def test_train_check_through_the_service(
    tf,  # noqa: F811 (the CLI fixture)
    client: Client,
    base_model: str,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    client.data.install_preset("math-grading")
    base = base_model.split("/models/")[1].replace("/versions/", "/")
    passed = tf(
        "train", "check", "--base-model", base, "--data", "math-grading-train=0.2", "--hp", "packing=true"
    )
    found = re.search(
        r"pre-flight check passed: (\d+) rows checked, memory about ([\d.]+) GiB of ([\d.]+) GiB",
        passed.stdout,
    )
    assert found, passed.stdout
    rows, need, have = int(found[1]), float(found[2]), float(found[3])
    assert rows > 0 and 0 < need < have
    [checked] = [j for j in client.train.list() if j.check_only]
    assert STATE_NAMES[checked.state] == "succeeded" and checked.metrics["preflight_rows_checked"] == rows
    assert not checked.final_model_version and not list(client.train.metrics(checked.name))
    request = tmp_path / "job.json"
    request.write_text(
        json.dumps(
            {
                "model": base,
                "training_file": "math-grading-train",
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "many"}}},
            }
        )
    )
    refused = tf("train", "create-openai", str(request), code=2)
    assert "method.supervised.hyperparameters.n_epochs" in refused.stderr
    # A model whose tokenizer lost its chat template: the check and a real job fail before any step.
    broken = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, broken)
    settings = json.loads((broken / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (broken / "tokenizer_config.json").write_text(json.dumps(settings))
    (broken / "chat_template.jinja").unlink(missing_ok=True)
    client.models.create("no-template")
    version = client.models.upload("no-template", broken).name
    refused = client.train.check(base_model=version, training_data={"math-grading-train": 0.2})
    assert refused.error.reason == "PREFLIGHT_FAILED" and "no chat template" in refused.error.message, (
        refused.error
    )
    job = client.train.create(base_model=version, training_data={"math-grading-train": 0.2})
    job = client.train.wait(job.name, timeout=300)
    assert job.error.reason == "PREFLIGHT_FAILED" and not list(client.train.metrics(job.name))
