"""Child processes that do a worker's heavy work, and die with it.

The worker starts a child without any Python code between fork and exec (so the gRPC and NATS
threads of the worker are never forked: a `preexec_fn` would fork them and abort the child); the
child itself asks the kernel to kill it when its parent dies (`PR_SET_PDEATHSIG`), first thing.

    env = child_environment()             # in the worker
    die_with_parent()                     # in the child's __main__

A program that is not ours (nats-server, weed) or a whole service is started through
`exec_argv(argv)`: `python -m services.kit.children PROGRAM ARGS…` sets the death signal (SIGTERM,
so the program still shuts down cleanly) and execs the program, which keeps it across `execve`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PARENT_VARIABLE = "TUNEFORGE_PARENT_PID"
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child of this process: it knows its parent's pid, and never reaches a
    model hub (every model it loads is a folder the worker fetched from the registry)."""
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return {**os.environ, **offline, PARENT_VARIABLE: str(os.getpid()), **extra}


def resident_bytes(pid: int) -> int:
    """A child's resident memory (what a memory limit is held against), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Receive `sig` when the parent dies; exit at once if it already has (it died before the
    request reached the kernel)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, sig)  # PR_SET_PDEATHSIG
    expected = os.environ.get(PARENT_VARIABLE)
    if expected and os.getppid() != int(expected):
        os._exit(1)


def exec_argv(argv: list[str]) -> list[str]:
    """`argv` run so that it receives SIGTERM when the process starting it dies (start it with
    `child_environment()` or with PARENT_VARIABLE set to this process's pid)."""
    return [sys.executable, "-m", "services.kit.children", *argv]


def _exec(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m services.kit.children PROGRAM [ARGS...]")
    die_with_parent(signal.SIGTERM)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    _exec(sys.argv[1:])
