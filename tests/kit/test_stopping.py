"""A stop signal ends a process even when its orderly stop hangs (a peer gone with it, say): the
kit's timer thread ends it `grace + CLOSE_SECONDS` after the first signal. A process that stops
in time is not cut short."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import asyncio, sys
from services.kit import server
server.CLOSE_SECONDS = 1.0

async def main() -> None:
    stopping = asyncio.Event()
    server.stop_on_signals(stopping, grace_seconds=0.5)
    print("ready", flush=True)
    await stopping.wait()
    print("stopping", flush=True)
    await asyncio.sleep(float(sys.argv[1]))  # the orderly stop: hangs, or takes a moment
    print("stopped", flush=True)

asyncio.run(main())
"""


def stop(close_takes: float) -> tuple[int, float, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(close_takes)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)  # a second signal does not restart the clock
    code = process.wait(timeout=60)
    return code, time.monotonic() - began, process.stdout.read()


def test_a_stop_that_hangs_is_ended_after_grace_and_close_seconds() -> None:
    code, took, output = stop(close_takes=3600)
    assert code == 1, output
    assert 1.4 <= took < 10, took
    assert "stopping" in output and "stopped" not in output
    assert "still stopping after 2 s; exiting now" in output


def test_a_stop_in_time_exits_normally() -> None:
    code, _, output = stop(close_takes=0.2)
    assert code == 0 and "stopped" in output and "exiting now" not in output, output
