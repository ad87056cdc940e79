"""What every part of the SDK shares: error translation, paging, hashing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from tuneforge.errors import TuneForgeError

CHUNK_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as error:
        raise TuneForgeError.from_rpc_error(error) from None


def pages(fetch: Callable[[str], tuple[list[T], str]]) -> Iterator[T]:
    token = ""
    while True:
        items, token = fetch(token)
        yield from items
        if not token:
            return


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, file) for every regular file under `folder`, skipping hidden ones."""
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            out.append((relative.as_posix(), path))
    if not out:
        raise TuneForgeError("INVALID_ARGUMENT", f"{folder} holds no files to upload", reason="EMPTY_FOLDER")
    return out
