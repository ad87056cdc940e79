"""Import, catalogue, lineage graph, export archive, merge and compression, alias history."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.registry.test_registry_api import expect_error
from tuneforge import Client
from tuneforge.registry.v1 import model_pb2


def greedy(model_dir: Path, adapter_dir: Path | None = None, tokens: int = 8) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        model_dir if adapter_dir is None or not (adapter_dir / "tokenizer.json").exists() else adapter_dir
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "请批改下面这篇作文"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False, min_new_tokens=tokens)
    return out[0][inputs["input_ids"].shape[1] :].tolist()


@pytest.fixture
def imported(client: Client, tiny_model_dir: Path, tmp_path: Path) -> tuple[model_pb2.ModelVersion, Path]:
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: [zh, en]\n---\n# Tiny\n")
    return client.models.import_model(folder, "tiny", tags={"size": "tiny"}), folder


def test_import_records_the_catalogue(client: Client, imported: tuple[model_pb2.ModelVersion, Path]) -> None:
    from transformers import AutoModelForCausalLM

    version, folder = imported
    assert version.lineage.base_model == f"local://{folder.resolve()}"
    catalog = version.catalog
    assert (
        catalog.family,
        catalog.context_length,
        list(catalog.dtypes),
        catalog.license,
        catalog.has_chat_template,
    ) == (
        "llama",
        512,
        ["F32"],
        "apache-2.0",
        True,
    )
    assert catalog.parameter_count == AutoModelForCausalLM.from_pretrained(folder).num_parameters()


def test_pickles_and_remote_code_are_refused_at_import(
    client: Client, tiny_model_dir: Path, tmp_path: Path
) -> None:
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04fake pickle")
    error = expect_error("INVALID_ARGUMENT", client.models.import_model, pickled, "pickled")
    assert error.reason == "UNSAFE_FILE" and "pytorch_model.bin" in error.message
    remote = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (remote / "config.json").write_text(json.dumps(config))
    error = expect_error("INVALID_ARGUMENT", client.models.import_model, remote, "remote")
    assert error.reason == "REMOTE_CODE" and "auto_map" in error.message
    assert (
        list(client.models.list_versions("pickled")) == []
        and list(client.models.list_versions("remote")) == []
    )


def _adapter(base_dir: Path, out: Path) -> Path:
    """A LoRA adapter with non-zero weights (so merging changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=32, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def test_lineage_of_a_two_step_incremental_chain(
    client: Client,
    imported: tuple[model_pb2.ModelVersion, Path],
    tmp_path: Path,
    real_job: Callable[[str], str],
) -> None:
    base, folder = imported
    adapter = _adapter(folder, tmp_path / "adapter")
    client.models.create("tuned")
    first = client.models.upload(
        "tuned",
        adapter,
        lineage={
            "base_model": base.name,
            "source_job": real_job("job-a"),
            "dataset_versions": [
                {
                    "dataset_version": f"projects/{client.project}/datasets/math-grading-train/versions/1",
                    "sampling_rate": 1.0,
                }
            ],
            "hyperparameters": {"epochs": 3},
        },
    )
    second = client.models.upload(
        "tuned",
        adapter,
        lineage={
            "base_model": base.name,
            "parent_version": first.name,
            "source_job": real_job("job-b"),
            "dataset_versions": [
                {
                    "dataset_version": f"projects/{client.project}/datasets/math-grading-eval/versions/1",
                    "sampling_rate": 0.5,
                }
            ],
        },
    )
    client.models.set_alias("tuned", "production", second.name)
    graph = client.models.lineage("tuned@production")
    assert graph.root == second.name
    assert [n.model_version for n in graph.nodes] == [base.name, first.name, second.name]
    edges = {(e.child, e.source, e.relation) for e in graph.edges}
    assert edges == {
        (first.name, base.name, "base"),
        (second.name, base.name, "base"),
        (second.name, first.name, "parent"),
    }
    by_name = {n.model_version: n for n in graph.nodes}
    assert by_name[second.name].lineage.source_job.endswith("job-b") and by_name[second.name].aliases == [
        "production"
    ]
    assert (
        by_name[first.name]
        .lineage.dataset_versions[0]
        .dataset_version.endswith("math-grading-train/versions/1")
    )
    assert by_name[first.name].lineage.hyperparameters["epochs"] == 3
    from_base = client.models.lineage(base.name)
    assert {n.model_version for n in from_base.nodes} == {base.name, first.name, second.name}, (
        "descendants too"
    )


def test_export_archive_loads_and_generates_the_same_tokens(
    client: Client, imported: tuple[model_pb2.ModelVersion, Path], tmp_path: Path
) -> None:
    version, folder = imported
    client.models.export(version.name, tmp_path / "export")
    assert {p.name for p in (tmp_path / "export").iterdir()} == {f.path for f in version.files}
    assert greedy(tmp_path / "export") == greedy(folder)


def test_merge_and_compression(
    client: Client, imported: tuple[model_pb2.ModelVersion, Path], tmp_path: Path
) -> None:
    base, folder = imported
    adapter_dir = _adapter(folder, tmp_path / "adapter")
    client.models.create("lora")
    adapter = client.models.upload("lora", adapter_dir, lineage={"base_model": base.name})
    merged = client.models.derive(adapter.name, "merge_lora")
    assert merged.kind == model_pb2.MODEL_VERSION_KIND_FULL and merged.catalog.derivation == "merge_lora"
    assert merged.lineage.parent_version == adapter.name and merged.lineage.base_model == base.name
    assert client.models.derive(adapter.name, "merge_lora").uid == merged.uid, "idempotent"
    client.models.download(merged.name, tmp_path / "merged")
    assert greedy(tmp_path / "merged") == greedy(folder, adapter_dir), (
        "merged = base + adapter, token for token"
    )
    assert greedy(tmp_path / "merged") != greedy(folder), "the adapter changes the model"

    sizes = {"source": merged.total_size_bytes}
    for operation, target in (("convert_dtype", "bfloat16"), ("quantize", "int8"), ("quantize", "int4")):
        derived = client.models.derive(merged.name, operation, target)
        sizes[target] = derived.total_size_bytes
        assert derived.total_size_bytes < merged.total_size_bytes
        assert (
            derived.catalog.derived_from == merged.name
            and derived.metrics["size_bytes"] == derived.total_size_bytes
        )
        client.models.download(derived.name, tmp_path / target)
        assert len(greedy(tmp_path / target)) == 8, f"{target} loads and generates"
    # Embeddings stay in float32 under weight-only quantization, and dominate a model this small;
    # the sizes go into the note, the order between int8 and bfloat16 depends on the model's shape.
    print("derived sizes (bytes):", sizes)

    error = expect_error("FAILED_PRECONDITION", client.models.derive, merged.name, "merge_lora")
    assert error.reason == "NOT_AN_ADAPTER"
    assert (
        expect_error("INVALID_ARGUMENT", client.models.derive, merged.name, "quantize", "int3")
        .violations[0]
        .field
        == "target"
    )
    graph = client.models.lineage(merged.name)
    assert (merged.name, adapter.name, "derived") in {(e.child, e.source, e.relation) for e in graph.edges}


def test_catalogue_search_and_alias_history(
    client: Client, imported: tuple[model_pb2.ModelVersion, Path], tmp_path: Path
) -> None:
    base, folder = imported
    client.models.create("lora")
    adapter = client.models.upload(
        "lora",
        _adapter(folder, tmp_path / "adapter"),
        lineage={"base_model": base.name},
        metrics={"bleu4": 12.5},
    )
    assert {e.model_version.name for e in client.models.catalog(filter='family = "llama"')} == {base.name}
    assert [e.model_version.name for e in client.models.catalog(filter='kind = "lora_adapter"')] == [
        adapter.name
    ]
    assert [e.method for e in client.models.catalog()] == ["base", "base"]
    big = base.catalog.parameter_count
    assert [e.model_version.name for e in client.models.catalog(filter=f"min_parameters = {big}")] == [
        base.name
    ]
    assert (
        client.models.catalog(filter=f"max_parameters = {big - 1}")[0].model_version.metrics["bleu4"] == 12.5
    )
    assert client.models.catalog(filter='tags.size = "tiny"')[0].model_version.name == base.name

    client.models.set_alias("tiny", "production", base.name)
    second = client.models.upload("tiny", folder)
    client.models.set_alias("tiny", "production", second.name)
    client.models.delete_alias("tiny", "production")
    history = client.models.alias_history("tiny")
    assert [(h.alias, h.from_version, h.to_version) for h in history] == [
        ("production", "", base.name),
        ("production", base.name, second.name),
        ("production", second.name, ""),
    ]
    assert all(h.actor for h in history)
    assert [e.model_version.name for e in client.models.catalog(filter='alias = "production"')] == []
    expect_error("FAILED_PRECONDITION", client.models.delete_version, base.name)  # the adapter builds on it
