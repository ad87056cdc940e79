"""What a model version may hold, checked on every byte that reaches the registry.

A version holds files of the kinds in `KINDS` only (an allow-list, by name and then by content):
safetensors weights, JSON configuration (never asking for remote code), tokenizer files, and plain
text and images for the model card. Everything else is refused with what it is: pickles under any
name, code, other weight formats, secrets, hidden files.

Each file is checked as its bytes go by (`FileCheck.feed`, then `finish` at its end), so an upload
streamed over gRPC, a presigned PUT read back at commit and a derived folder go through the same
checks. A safetensors file is validated whole against its header: every tensor's dtype, shape and
byte range, the ranges covering the data exactly (no gaps, no overlap, nothing after), the file's
length. Then `check_version` checks the files against each other: `config.json` against the
tensors' shapes, a shard index against the shards.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from services.kit.errors import InvalidArgument

MAX_PATH_LENGTH = 255
MAX_FILES = 1000
MAX_JSON_BYTES = 64 * 1024 * 1024  # tokenizer.json of large vocabularies reaches ~30 MB
MAX_TEXT_HEAD = 64 * 1024
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
CONVERT_HINT = (
    "convert weights to safetensors (for example `model.save_pretrained(dir, safe_serialization=True)`)"
)

# safetensors dtypes and their sizes in bits.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip

# Refused, with what they are. Checked on the last suffix, case-insensitively.
REFUSED = {
    **dict.fromkeys((".bin", ".pt", ".pth"), f"a PyTorch pickle checkpoint; {CONVERT_HINT}"),
    ".ckpt": f"a pickle checkpoint; {CONVERT_HINT}",
    **dict.fromkeys((".pkl", ".pickle"), f"a Python pickle; {CONVERT_HINT}"),
    ".joblib": "a joblib pickle",
    ".dill": "a dill pickle",
    **dict.fromkeys((".npy", ".npz"), "a NumPy file, which may hold pickled objects"),
    ".py": "Python code (TuneForge never runs a model's code)",
    **dict.fromkeys(
        (".pyc", ".pyo", ".pyw", ".so", ".dll", ".dylib", ".exe", ".sh", ".bash", ".zsh",
         ".bat", ".cmd", ".ps1", ".js", ".mjs", ".ts", ".rb", ".pl", ".lua", ".ipynb", ".jar", ".wasm"),
        "code (TuneForge never runs a model's code)",
    ),
    **dict.fromkeys((".h5", ".hdf5", ".keras"), "Keras/HDF5 weights; only safetensors weights are stored"),
    ".msgpack": "Flax msgpack weights; only safetensors weights are stored",
    ".onnx": "an ONNX graph; only safetensors weights are stored",
    **dict.fromkeys(
        (".gguf", ".ggml"), "GGUF/GGML weights: a deployment format, not stored as a version (keep safetensors)"
    ),
    **dict.fromkeys((".tflite", ".pb", ".mlmodel", ".ot", ".engine", ".plan"), "a weight format other than safetensors"),
    **dict.fromkeys((".pem", ".key", ".p12", ".pfx", ".env", ".netrc"), "a secret, never stored"),
}  # fmt: skip

# The allow-list: suffix -> kind. Names without a suffix that may be stored are in BARE_NAMES.
KINDS = {
    ".safetensors": "safetensors",
    ".json": "json",
    ".txt": "text",
    ".md": "markdown",
    ".jinja": "template",
    ".tiktoken": "text",
    ".model": "sentencepiece",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".gif": "image",
    ".webp": "image",
}
BARE_NAMES = {"LICENSE", "LICENCE", "NOTICE", "README", "COPYING", "USE_POLICY"}
ALLOWED_HINT = (
    "a version may hold .safetensors weights, .json configuration, tokenizer files (.model, .txt, "
    ".tiktoken), .jinja templates, .md/.txt text, LICENSE/NOTICE/README and .png/.jpg/.gif/.webp images"
)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"RIFF")
_CODE_LINE = re.compile(
    rb"^\s*(import\s+[A-Za-z_][\w.]*\s*$|from\s+[A-Za-z_.][\w.]*\s+import\s|def\s+\w+\s*\(|class\s+\w+.*:\s*$"
    rb"|exec\(|eval\(|__import__\(|os\.system\(|subprocess\.)",
    re.MULTILINE,
)


def _refuse(field_: str, message: str, reason: str = "UNSAFE_FILE") -> InvalidArgument:
    return InvalidArgument.field(field_, message, reason=reason)


def kind_of(path: str) -> str:
    """The kind a checked path holds (see `check_path`)."""
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return "text"
    return KINDS[name[name.rindex(".") :].lower()]


def check_path(path: str, field_: str) -> str:
    """A relative path with `/` separators, plain characters, of a kind a version may hold."""
    if not path:
        raise InvalidArgument.field(field_, "file path is empty")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument.field(field_, f"file path is longer than {MAX_PATH_LENGTH} characters")
    shown = path[:80]
    if not _PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidArgument.field(
            field_,
            f"{shown!r} is not a plain relative path (letters, digits, '.', '_', '-' and '/' separators; no '..')",
        )
    parts = path.split("/")
    if any(part.startswith(".") for part in parts):
        raise _refuse(field_, f"{shown} is a hidden file or folder (.git, .env, …): never stored")
    if any(part.endswith(".") for part in parts):
        raise _refuse(field_, f"{shown} ends with a dot, which hides what it is: rename it")
    name = parts[-1]
    suffix = name[name.rindex(".") :].lower() if "." in name else ""
    if suffix in REFUSED:
        raise _refuse(field_, f"{shown} is {REFUSED[suffix]}")
    if suffix not in KINDS and not (not suffix and name in BARE_NAMES):
        raise _refuse(field_, f"{shown} is not a kind of file a model version holds: {ALLOWED_HINT}")
    return path


@dataclass
class FileFacts:
    """What the checks learned of one file."""

    path: str
    kind: str
    size: int = 0
    tensors: dict[str, tuple[str, list[int]]] = field(default_factory=dict)  # safetensors
    document: Any = None  # json


class FileCheck:
    """Checks one file as its bytes arrive, in order; `finish()` at its end returns its facts.

    Each problem raises InvalidArgument on `field_` naming the file (and the tensor)."""

    def __init__(self, path: str, field_: str) -> None:
        self.path, self.field, self.kind = path, field_, kind_of(path)
        self.size = 0
        self.head = bytearray()  # the first bytes (all of a JSON file)
        self.header_end = 0  # safetensors: 8 + header length, once known
        self.expected = 0  # safetensors: the file's length as its header says
        self.tensors: dict[str, tuple[str, list[int]]] = {}
        self.head_checked = False

    def _fail(self, problem: str, reason: str = "UNSAFE_FILE") -> InvalidArgument:
        return _refuse(self.field, f"{self.path}: {problem}", reason)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        room = self._head_room()
        if room > 0:
            self.head += data[:room]
        if not self.head_checked and len(self.head) >= 8:
            self._check_head()
        if self.kind == "safetensors":
            self._feed_safetensors()
        elif self.kind == "json" and self.size > MAX_JSON_BYTES:
            raise self._fail(f"a JSON file over {MAX_JSON_BYTES // 2**20} MiB is not configuration")

    def _head_room(self) -> int:
        """How many more bytes to keep: all of a JSON file, a safetensors header, else a text head."""
        if self.kind == "json":
            return MAX_JSON_BYTES + 1 - len(self.head)
        if self.kind == "safetensors":
            return 0 if self.expected else (self.header_end or 8 + _SAFETENSORS_MAX_HEADER) - len(self.head)
        return MAX_TEXT_HEAD - len(self.head)

    def _check_head(self) -> None:
        """Signatures of what must never be stored. (A safetensors file starts with its header's
        length, whose bytes may look like anything: its header is validated instead.)"""
        self.head_checked = True
        if self.kind == "safetensors":
            return
        head = bytes(self.head[:8])
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            raise self._fail(f"holds a Python pickle; {CONVERT_HINT}")
        if head.startswith(b"PK\x03\x04"):
            raise self._fail("is a zip archive (a PyTorch checkpoint holds pickles in one)")
        if head.startswith(b"\x7fELF") or head.startswith(b"MZ"):
            raise self._fail("is an executable")
        if head.startswith(b"#!"):
            raise self._fail("is a script (it starts with #!)")

    def _feed_safetensors(self) -> None:
        if not self.header_end and len(self.head) >= 8:
            if self.head[0] == 0x80 and 2 <= self.head[1] <= 5 and self.head[2:3] == b"\x95":
                raise self._fail(f"holds a Python pickle, not safetensors; {CONVERT_HINT}")
            length = int.from_bytes(self.head[:8], "little")
            if length == 0 or length > _SAFETENSORS_MAX_HEADER:
                raise self._fail(f"header length {length} is out of range", "INVALID_SAFETENSORS")
            self.header_end = 8 + length
        if self.header_end and not self.expected and len(self.head) >= self.header_end:
            self.expected = self.header_end + self._parse_header(bytes(self.head[8 : self.header_end]))
            self.head = self.head[: self.header_end]
        if self.expected and self.size > self.expected:
            raise self._fail(
                f"holds {self.size - self.expected}+ bytes after the tensor data its header describes",
                "INVALID_SAFETENSORS",
            )

    def _parse_header(self, raw: bytes) -> int:
        """Validate the header; return the length of the data it describes."""

        def bad(problem: str) -> InvalidArgument:
            return self._fail(f"not a valid safetensors file: {problem}", "INVALID_SAFETENSORS")

        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"the header is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise bad("the header is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise bad("__metadata__ must map names to strings")
        ranges = []
        for name, tensor in header.items():
            shown = name[:100]
            if not isinstance(tensor, dict) or set(tensor) != {"dtype", "shape", "data_offsets"}:
                raise bad(f"tensor {shown!r} needs exactly dtype, shape and data_offsets")
            dtype, shape, offsets = tensor["dtype"], tensor["shape"], tensor["data_offsets"]
            if dtype not in DTYPE_BITS:
                raise bad(f"tensor {shown!r} has an unknown dtype {str(dtype)[:20]!r}")
            if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
                raise bad(f"tensor {shown!r} has a shape that is not a list of non-negative integers")
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(type(o) is int and o >= 0 for o in offsets)
                or offsets[1] < offsets[0]
            ):
                raise bad(f"tensor {shown!r} has data_offsets that are not [begin, end] with end ≥ begin")
            nbytes = math.prod(shape) * DTYPE_BITS[dtype]
            if nbytes % 8 or nbytes // 8 != offsets[1] - offsets[0]:
                raise bad(
                    f"tensor {shown!r}: shape {shape[:8]} of {dtype} needs {nbytes / 8:.0f} bytes but its "
                    f"data_offsets span {offsets[1] - offsets[0]}"
                )
            ranges.append((offsets[0], offsets[1], shown))
            self.tensors[name] = (dtype, shape)
        end = 0
        for begin, stop, shown in sorted(ranges):
            if begin != end:
                what = (
                    "overlaps the tensor before it" if begin < end else f"leaves a gap of {begin - end} bytes"
                )
                raise bad(f"tensor {shown!r} {what} (the data must be covered exactly)")
            end = stop
        return end

    def finish(self) -> FileFacts:
        if not self.head_checked:
            self._check_head()
        facts = FileFacts(self.path, self.kind, self.size)
        if self.kind == "safetensors":
            if not self.expected:
                raise self._fail(
                    "not a valid safetensors file: it ends before its header does "
                    f"({self.size} bytes, header {self.header_end - 8 if self.header_end else '?'} bytes)",
                    "INVALID_SAFETENSORS",
                )
            if self.size != self.expected:
                raise self._fail(
                    f"not a valid safetensors file: its header describes {self.expected} bytes but the file "
                    f"holds {self.size}",
                    "INVALID_SAFETENSORS",
                )
            facts.tensors = self.tensors
        elif self.kind == "json":
            facts.document = self._json()
        elif self.kind in ("text", "markdown", "template"):
            self._text()
        elif self.kind == "image" and not bytes(self.head[:12]).startswith(_IMAGE_MAGIC):
            raise self._fail("is not the image its name says (no PNG, JPEG, GIF or WebP signature)")
        elif self.kind == "sentencepiece" and self.size and self.head[:1] != b"\x0a":
            raise self._fail("is not a SentencePiece model (a serialized ModelProto)")
        return facts

    def _json(self) -> Any:
        try:
            document = json.loads(bytes(self.head))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._fail(f"is not valid JSON ({str(exc)[:100]})", "INVALID_CONFIG") from None
        if isinstance(document, dict) and (document.get("auto_map") or document.get("trust_remote_code")):
            raise self._fail(
                "asks for remote code (auto_map); TuneForge never runs a model's own code. Use a model "
                "whose architecture transformers supports natively",
                "REMOTE_CODE",
            )
        return document

    def _text(self) -> None:
        head = bytes(self.head)
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the end of the head
                raise self._fail("is not UTF-8 text") from None
        # A model card (markdown) may show code; plain text (vocabularies, merges, notices) holds none.
        if self.kind == "text" and _CODE_LINE.search(head):
            raise self._fail("holds source code (import/def/class lines); code is never stored")


def check_file(path: str, data: bytes, field_: str) -> FileFacts:
    """All the checks of one file held in memory."""
    check = FileCheck(check_path(path, field_), field_)
    check.feed(data)
    return check.finish()


_LAYER = re.compile(r"\.(?:layers|layer|h|blocks|block)\.(\d+)\.")
_EMBEDDING = re.compile(r"(?:embed_tokens|wte|word_embeddings|embeddings|tok_embeddings)\.weight$")


def check_version(facts: list[FileFacts], field_: str = "files") -> None:
    """The files against each other: config.json against the tensors, a shard index against the shards."""
    by_path = {f.path: f for f in facts}
    tensors = {
        name: shape for f in facts if f.kind == "safetensors" for name, (_, shape) in f.tensors.items()
    }
    for f in facts:
        if f.path.endswith(".safetensors.index.json") and isinstance(f.document, dict):
            weight_map = f.document.get("weight_map")
            if not isinstance(weight_map, dict):
                raise _refuse(field_, f"{f.path} has no weight_map", "INVALID_CONFIG")
            folder = f.path.rsplit("/", 1)[0] + "/" if "/" in f.path else ""
            for tensor, shard in list(weight_map.items())[:100_000]:
                shard_facts = by_path.get(folder + str(shard))
                if shard_facts is None or tensor not in shard_facts.tensors:
                    raise _refuse(
                        field_,
                        f"{f.path} places tensor {str(tensor)[:100]!r} in {str(shard)[:100]}, which does not hold it",
                        "INVALID_CONFIG",
                    )
    config = by_path.get("config.json")
    if config is None or not isinstance(config.document, dict) or not tensors:
        return
    _check_config(config.document, tensors, field_)


def _check_config(config: dict[str, Any], tensors: dict[str, list[int]], field_: str) -> None:
    def mismatch(what: str) -> InvalidArgument:
        return _refuse(field_, f"config.json does not match the weights: {what}", "CONFIG_MISMATCH")

    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    layers = next((text[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if k in text), None)
    hidden = next((text[k] for k in ("hidden_size", "n_embd", "d_model") if k in text), None)
    vocab = text.get("vocab_size")
    for name, value in (("layers", layers), ("hidden size", hidden), ("vocab_size", vocab)):
        if value is not None and (type(value) is not int or value <= 0):
            raise mismatch(f"{name} {str(value)[:20]} is not a positive integer")
    indices = {int(m.group(1)) for name in tensors if (m := _LAYER.search(name))}
    if layers is not None and indices and max(indices) + 1 != layers:
        raise mismatch(f"it says {layers} layers; the weights hold {max(indices) + 1}")
    embeddings = [shape for name, shape in tensors.items() if _EMBEDDING.search(name) and len(shape) == 2]
    if embeddings and (hidden is not None or vocab is not None):
        rows, width = embeddings[0]
        if hidden is not None and width != hidden:
            raise mismatch(f"hidden size {hidden}, but the embedding is {width} wide")
        if vocab is not None and rows != vocab:
            raise mismatch(f"vocab_size {vocab}, but the embedding has {rows} rows")
    elif hidden is not None and not any(hidden in shape for shape in tensors.values()):
        raise mismatch(f"hidden size {hidden}, but no tensor has a dimension of that size")
