"""The local suite owns its data folder, and its processes never outlive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.suite.suite import ENDPOINTS_FILE, LocalSuite, SuiteRunning, take_lock

ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.add(pid)
    return out


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def tuneforge(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuneforge", *args],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`tuneforge up` on a fresh folder, running until its endpoints are written."""
    folder = tmp_path / "home"
    process = tuneforge("up", "--data-dir", str(folder), log=tmp_path / "up.log")
    wait_for(lambda: (folder / ENDPOINTS_FILE).exists() or process.poll() is not None, 120, "the suite")
    assert process.poll() is None, (tmp_path / "up.log").read_text()
    yield process, folder
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_second_suite_on_the_folder_is_refused_or_attaches(
    up: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    first, folder = up
    components = children_of(first.pid)
    assert len(components) >= 12, "NATS, S3, six services and their workers"

    second = subprocess.run(
        [sys.executable, "-m", "tuneforge", "up", "--data-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
    with pytest.raises(SuiteRunning) as refused:
        LocalSuite(folder).start()
    assert refused.value.pid == first.pid
    assert (folder / ENDPOINTS_FILE).exists(), "the running suite's endpoint file is left alone"
    assert alive(components) == components, "nothing of the running suite was touched"

    # The quickstart attaches to the running suite (and leaves it running when stopped).
    log = tmp_path / "quickstart.log"
    quickstart = tuneforge("quickstart", "--fast", "--data-dir", str(folder), log=log)
    wait_for(lambda: "✓ data:" in log.read_text(errors="replace"), 120, "the quickstart's first step")
    assert f"using the suite already running on {folder} (pid {first.pid})" in log.read_text()
    quickstart.send_signal(signal.SIGTERM)
    assert quickstart.wait(30) == 130, log.read_text()
    assert alive(components) == components and (folder / ENDPOINTS_FILE).exists()
    endpoints = json.loads((folder / ENDPOINTS_FILE).read_text())
    assert {"registry", "data", "train", "eval", "serve", "nats", "s3"} <= set(endpoints)

    first.send_signal(signal.SIGINT)
    assert first.wait(60) == 0
    assert alive(components) == set(), "Ctrl-C stops every component"
    assert not (folder / ENDPOINTS_FILE).exists()


def test_components_die_with_a_killed_suite_and_the_folder_is_free_again(
    up: tuple[subprocess.Popen[bytes], Path],
) -> None:
    first, folder = up
    components = children_of(first.pid)
    assert components
    first.kill()  # SIGKILL: the suite runs no code of its own on the way out
    first.wait()
    # Each component got SIGTERM from the kernel; one whose orderly stop hangs ends itself after
    # the grace and close seconds (10 + 15 s here).
    deadline = time.monotonic() + 45
    while alive(components) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: command_of(pid) for pid in alive(components)}
    assert not left, f"still running 45 s after the suite was killed: {left}"
    os.close(take_lock(folder))  # the kernel released the lock with the process


def test_sigterm_stops_a_quickstart_and_everything_it_started(tmp_path: Path) -> None:
    folder, log = tmp_path / "home", tmp_path / "quickstart.log"
    quickstart = tuneforge("quickstart", "--fast", "--data-dir", str(folder), log=log)
    try:
        wait_for(lambda: "✓ local suite" in log.read_text(errors="replace"), 120, "the suite")
        components = children_of(quickstart.pid)
        assert len(components) >= 12
        quickstart.send_signal(signal.SIGTERM)
        assert quickstart.wait(60) == 130, log.read_text()
        assert alive(components) == set(), "the suite was stopped, not orphaned"
        assert not (folder / ENDPOINTS_FILE).exists()
    finally:
        if quickstart.poll() is None:
            quickstart.kill()
