"""Files a model version must refuse, and files it must keep: the catalogue the weight checks are
tested against, here and through the registry's upload paths (tests/registry/test_weights.py)."""

from __future__ import annotations

import json
import pickle
import struct
from dataclasses import dataclass


def safetensors(header: dict, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + data


def tensor(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


VALID = safetensors({"a": tensor("F32", [2, 2], 0, 16), "b": tensor("BF16", [4], 16, 24)}, b"\x00" * 24)
PICKLE = pickle.dumps({"x": 1}, protocol=4)


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    data: bytes
    reason: str  # the ErrorInfo reason
    words: str  # in the message


REFUSED = [
    # 1. safetensors headers against their data
    Case("offsets beyond the file", "model.safetensors",
         safetensors({"w": tensor("F32", [16], 0, 64)}, b"\x00" * 16), "INVALID_SAFETENSORS", "describes"),
    Case("end before begin", "model.safetensors",
         safetensors({"w": tensor("F32", [4], 16, 0)}, b"\x00" * 16), "INVALID_SAFETENSORS", "end ≥ begin"),
    Case("shape × dtype does not match the range", "model.safetensors",
         safetensors({"w": tensor("F32", [8], 0, 16)}, b"\x00" * 16), "INVALID_SAFETENSORS", "'w': shape [8]"),
    Case("overlapping tensors", "model.safetensors",
         safetensors({"a": tensor("F32", [4], 0, 16), "b": tensor("F32", [4], 8, 24)}, b"\x00" * 24),
         "INVALID_SAFETENSORS", "'b' overlaps"),
    Case("unknown dtype", "model.safetensors",
         safetensors({"w": tensor("Q7", [4], 0, 4)}, b"\x00" * 4), "INVALID_SAFETENSORS", "unknown dtype"),
    Case("negative shape", "model.safetensors",
         safetensors({"w": tensor("F32", [-4], 0, 16)}, b"\x00" * 16), "INVALID_SAFETENSORS", "non-negative"),
    Case("a pickle after the tensor data", "model.safetensors", VALID + PICKLE,
         "INVALID_SAFETENSORS", "bytes after the tensor data"),
    Case("bytes in a gap", "model.safetensors",
         safetensors({"a": tensor("F32", [4], 0, 16), "b": tensor("F32", [4], 24, 40)}, b"\x00" * 40),
         "INVALID_SAFETENSORS", "gap of 8 bytes"),
    Case("a header claiming more than the file holds", "model.safetensors",
         safetensors({"w": tensor("F32", [1 << 20], 0, 4 << 20)}, b"\x00" * 64), "INVALID_SAFETENSORS",
         "describes"),
    Case("a header length larger than the file", "model.safetensors",
         safetensors({"w": tensor("F32", [4], 0, 16)}, b"\x00" * 16, length=1 << 20), "INVALID_SAFETENSORS",
         "ends before its header"),
    Case("header length 0", "model.safetensors", b"\x00" * 8 + b"{}", "INVALID_SAFETENSORS", "out of range"),
    Case("a header of 2^40 bytes", "model.safetensors", (1 << 40).to_bytes(8, "little") + b"{}",
         "INVALID_SAFETENSORS", "out of range"),
    Case("a header that is not JSON", "model.safetensors", safetensors({}, length=3)[:8] + b"{x}",
         "INVALID_SAFETENSORS", "not valid JSON"),
    Case("a header that is a list", "model.safetensors", (2).to_bytes(8, "little") + b"[]",
         "INVALID_SAFETENSORS", "not a JSON object"),
    Case("a tensor without offsets", "model.safetensors",
         safetensors({"w": {"dtype": "F32", "shape": [1]}}, b"\x00" * 4), "INVALID_SAFETENSORS", "exactly"),
    Case("a float in a shape", "model.safetensors",
         safetensors({"w": tensor("F32", [1.5], 0, 4)}, b"\x00" * 4), "INVALID_SAFETENSORS", "non-negative"),
    Case("metadata that is not strings", "model.safetensors",
         safetensors({"__metadata__": {"a": 1}, "w": tensor("F32", [1], 0, 4)}, b"\x00" * 4),
         "INVALID_SAFETENSORS", "__metadata__"),
    Case("shorter than a header length", "model.safetensors", b"\x01", "INVALID_SAFETENSORS", "ends before"),
    Case("a pickle named .safetensors", "model.safetensors", PICKLE, "UNSAFE_FILE", "holds a Python pickle"),
    # 2. other weight formats
    Case("Keras HDF5", "tf_model.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 8, "UNSAFE_FILE", "Keras"),
    Case("Flax msgpack", "flax_model.msgpack", b"\x82\xa1a\x01", "UNSAFE_FILE", "msgpack"),
    Case("GGUF", "model.gguf", b"GGUF\x03\x00\x00\x00", "UNSAFE_FILE", "GGUF"),
    Case("ONNX", "model.onnx", b"\x08\x07\x12\x04", "UNSAFE_FILE", "ONNX"),
    Case("TFLite", "model.tflite", b"\x1c\x00\x00\x00TFL3", "UNSAFE_FILE", "other than safetensors"),
    Case("PyTorch pickle", "pytorch_model.bin", PICKLE, "UNSAFE_FILE", "pickle"),
    Case("NumPy", "weights.npy", b"\x93NUMPY", "UNSAFE_FILE", "NumPy"),
    # 3. code and secrets
    Case("a shell script", "setup.sh", b"#!/bin/sh\nrm -rf /\n", "UNSAFE_FILE", "code"),
    Case("a notebook", "demo.ipynb", b'{"cells": []}', "UNSAFE_FILE", "code"),
    Case("JavaScript", "tokenizer.js", b"require('child_process')", "UNSAFE_FILE", "code"),
    Case("Python", "modeling.py", b"import os", "UNSAFE_FILE", "code"),
    Case("a script disguised as text (shebang)", "notes.txt", b"#!/usr/bin/env python\nprint(1)\n",
         "UNSAFE_FILE", "#!"),
    Case("Python source disguised as text", "vocab_extra.txt", b"hello\nimport os\nos.system('id')\n",
         "UNSAFE_FILE", "source code"),
    Case("a trailing dot", "evil.py.", b"import os", "UNSAFE_FILE", "ends with a dot"),
    Case("auto_map in processor_config.json", "processor_config.json",
         json.dumps({"auto_map": {"AutoProcessor": "proc.Proc"}}).encode(), "REMOTE_CODE", "remote code"),
    Case("auto_map in config.json", "config.json",
         json.dumps({"model_type": "x", "auto_map": {"AutoModel": "m.M"}}).encode(), "REMOTE_CODE", "auto_map"),
    Case("trust_remote_code in tokenizer_config.json", "tokenizer_config.json",
         json.dumps({"trust_remote_code": True}).encode(), "REMOTE_CODE", "remote code"),
    Case("a git folder", ".git/config", b"[core]\n", "UNSAFE_FILE", "hidden"),
    Case("a nested hidden file", "sub/.env", b"TOKEN=1\n", "UNSAFE_FILE", "hidden"),
    Case("secrets", "server.pem", b"-----BEGIN PRIVATE KEY-----", "UNSAFE_FILE", "secret"),
    Case("an executable named .model", "tokenizer.model", b"\x7fELF\x02\x01", "UNSAFE_FILE", "executable"),
    Case("a zip named .json", "config.json", b"PK\x03\x04" + b"\x00" * 26, "UNSAFE_FILE", "zip"),
    Case("a pickle named .json", "tokenizer.json", PICKLE, "UNSAFE_FILE", "pickle"),
    Case("not JSON", "config.json", b"{model_type: llama}", "INVALID_CONFIG", "not valid JSON"),
    Case("an image that is not one", "logo.png", b"<script>", "UNSAFE_FILE", "not the image"),
    Case("a native library", "ops.so", b"\x7fELF", "UNSAFE_FILE", "code"),
    Case("an unknown kind", "weights.xyz", b"\x00", "UNSAFE_FILE", "not a kind of file"),
    Case("text that is not UTF-8", "merges.txt", b"\xff\xfe\xfa" * 10, "UNSAFE_FILE", "not UTF-8"),
]  # fmt: skip

KEPT = [
    ("model.safetensors", VALID),
    ("empty.safetensors", safetensors({"e": tensor("F32", [0, 4], 0, 0)})),
    ("meta.safetensors", safetensors({"__metadata__": {"format": "pt"}, "w": tensor("I8", [3], 0, 3)}, b"abc")),
    ("config.json", b'{"model_type": "llama"}'),
    ("tokenizer.json", b'{"version": "1.0", "model": {"type": "BPE"}}'),
    ("merges.txt", "#version: 0.2\nĠ t\nĠ a\n".encode()),
    ("README.md", b"---\nlicense: mit\n---\n```python\nimport torch\nfrom transformers import AutoModel\n```\n"),
    ("chat_template.jinja", b"{% for m in messages %}{{ m['content'] }}{% endfor %}"),
    ("tokenizer.model", b"\x0a\x0b\x0a\x05<unk>\x15\x00\x00\x00\x00"),
    ("LICENSE", b"Apache License 2.0\n"),
    ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8),
    ("sub/dir/vocab.txt", "你好\n世界\n".encode()),
]  # fmt: skip

# The version-level checks: files that pass alone and contradict each other.
F32 = struct.pack("<f", 0.0)


def tiny_llama(layers: int = 2, hidden: int = 4, vocab: int = 8) -> bytes:
    header, offset = {}, 0
    for name, shape in [("model.embed_tokens.weight", [vocab, hidden])] + [
        (f"model.layers.{i}.mlp.up_proj.weight", [hidden, hidden]) for i in range(layers)
    ]:
        size = shape[0] * shape[1] * 4
        header[name] = tensor("F32", shape, offset, offset + size)
        offset += size
    return safetensors(header, b"\x00" * offset)


def config(**values: object) -> bytes:
    return json.dumps({"model_type": "llama", **values}).encode()
