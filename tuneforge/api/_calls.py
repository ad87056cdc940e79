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


def folder_files(folder: Path, *, within: Path | None = None) -> list[tuple[str, Path]]:
    """(relative path, file) for every regular file under `folder`, skipping hidden ones.

    A symlink is followed only to a file inside `within` (default: the folder itself); one that
    leaves it, or points at a folder, is refused by name rather than followed silently."""
    root = (within or folder).resolve()
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise TuneForgeError(
                    "INVALID_ARGUMENT",
                    f"{relative} is a symlink to {target}, outside {folder}: copy the file in or remove the link",
                    reason="SYMLINK_OUTSIDE_FOLDER",
                )
            if target.is_dir():
                raise TuneForgeError(
                    "INVALID_ARGUMENT",
                    f"{relative} is a symlink to a folder, which uploads do not follow: copy its files in",
                    reason="SYMLINKED_FOLDER",
                )
        if path.is_file():
            out.append((relative.as_posix(), path))
    if not out:
        raise TuneForgeError("INVALID_ARGUMENT", f"{folder} holds no files to upload", reason="EMPTY_FOLDER")
    return out


def save_report(report: Any, charts: Any, directory: str | Path) -> list[Path]:
    """A report's JSON (a protobuf Struct) and its charts (presigned URLs) into `directory`."""
    import json
    import urllib.request

    from google.protobuf import json_format

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    written[0].write_text(json.dumps(json_format.MessageToDict(report), ensure_ascii=False, indent=1) + "\n")
    for chart in charts:
        target = out / Path(chart.path).name
        with urllib.request.urlopen(chart.url, timeout=60) as response:
            target.write_bytes(response.read())
        written.append(target)
    return written


def follow_until(
    open_stream: Callable[[float], Iterator[T]], done: Callable[[T], bool], first: T, timeout: float, what: str
) -> T:
    """Follow a Watch stream until `done(value)`, within `timeout` seconds: the stream is opened with
    the time left as its deadline, and opened again when a restarting service ends it (UNAVAILABLE);
    TimeoutError when the time is up. `first` is the value read before (returned when done)."""
    import time

    deadline = time.monotonic() + timeout
    last = first
    while not done(last):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what} did not finish within {timeout:g} s")
        try:
            for last in open_stream(left):
                if done(last):
                    break
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                continue  # the loop's check says it is over
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise TuneForgeError.from_rpc_error(error) from None
            time.sleep(0.5)
    return last
