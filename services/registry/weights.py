"""What may be stored in a model version: safetensors weights and plain files, never pickles or code.

Checks run on names (refused suffixes) and on content (the first bytes of each file), so a pickle
renamed to `.safetensors` is refused as well.
"""

from __future__ import annotations

import json
import re

from services.kit.errors import InvalidArgument

MAX_PATH_LENGTH = 255
MAX_FILES = 1000
_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024

REFUSED_SUFFIXES = {
    ".bin": "a PyTorch pickle checkpoint",
    ".pt": "a PyTorch pickle checkpoint",
    ".pth": "a PyTorch pickle checkpoint",
    ".ckpt": "a pickle checkpoint",
    ".pkl": "a Python pickle",
    ".pickle": "a Python pickle",
    ".joblib": "a joblib pickle",
    ".dill": "a dill pickle",
    ".npy": "a NumPy array file, which may hold pickled objects",
    ".npz": "a NumPy archive, which may hold pickled objects",
    ".py": "Python code (TuneForge never runs model code)",
    ".pyc": "compiled Python code",
    ".so": "a native library",
}
CONVERT_HINT = (
    "convert weights to safetensors (for example `model.save_pretrained(dir, safe_serialization=True)`)"
)


def check_path(path: str, field: str) -> str:
    """A relative path with `/` separators, plain characters, no `.`/`..` segments."""
    if not path:
        raise InvalidArgument.field(field, "file path is empty")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument.field(field, f"file path is longer than {MAX_PATH_LENGTH} characters")
    if not _PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidArgument.field(
            field,
            f"{path!r} is not a plain relative path (letters, digits, '.', '_', '-' and '/' separators; no '..')",
        )
    lowered = path.lower()
    for suffix, what in REFUSED_SUFFIXES.items():
        if lowered.endswith(suffix):
            raise InvalidArgument.field(
                field,
                f"{path} is {what}; only safetensors weights are accepted: {CONVERT_HINT}",
                reason="UNSAFE_FILE",
            )
    return path


def check_content(path: str, head: bytes, field: str) -> None:
    """Refuse pickles whatever their name, and `.safetensors` files whose header is not valid.

    `head` is the file's first bytes (the first chunk of an upload: up to a few MiB).
    """
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise InvalidArgument.field(
            field, f"{path} holds a Python pickle; {CONVERT_HINT}", reason="UNSAFE_FILE"
        )
    if head.startswith(b"PK\x03\x04") and b"data.pkl" in head[:65536]:
        raise InvalidArgument.field(
            field, f"{path} is a PyTorch zip checkpoint (pickle inside); {CONVERT_HINT}", reason="UNSAFE_FILE"
        )
    if path.lower().endswith(".safetensors"):
        problem = _safetensors_problem(head)
        if problem:
            raise InvalidArgument.field(
                field, f"{path} is not a valid safetensors file: {problem}", reason="INVALID_SAFETENSORS"
            )


def _safetensors_problem(head: bytes) -> str | None:
    if len(head) < 8:
        return "shorter than the 8-byte header length"
    header_length = int.from_bytes(head[:8], "little")
    if header_length == 0 or header_length > _SAFETENSORS_MAX_HEADER:
        return f"header length {header_length} is out of range"
    if len(head) > 8 and head[8:9] != b"{":
        return "the header is not a JSON object"
    if len(head) >= 8 + header_length:
        try:
            header = json.loads(head[8 : 8 + header_length])
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"the header is not valid JSON ({exc})"
        if not isinstance(header, dict):
            return "the header is not a JSON object"
    return None
