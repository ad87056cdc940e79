"""The sandboxed side of a Python grader (see services/kit/sandbox.py). Run as
`python -I grader_child.py WORK_DIR` (isolated: no PYTHONPATH, no user site, not this folder on the
path), it imports nothing of TuneForge, and before it reads the grader it:

- asks for SIGKILL when its parent dies;
- caps its address space, CPU seconds, open files and file sizes (resource limits);
- moves into new user and network namespaces (no interface but a down loopback: no network);
- installs an audit hook that refuses sockets, subprocesses, exec, fork, ctypes and writes
  outside WORK_DIR, whether or not the namespaces could be made.

Then it runs `grade(sample, item)` for each item with a per-item timer and writes one JSON line per
item: `{"score": x}` or `{"error": "…"}`.
"""

import ctypes
import json
import math
import os
import resource
import signal
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
BLOCKED = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "ctypes.",
    "pty.",
    "webbrowser.",
    "sys._current_frames",
)


def confine(work: str, settings: dict) -> bool:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    memory = int(settings["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(settings["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    isolated = libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
    root = os.path.realpath(work)

    def audit(event: str, args: tuple) -> None:
        if event.startswith(BLOCKED):
            raise PermissionError(f"the grader sandbox does not allow {event}")
        if event == "open" and len(args) > 1:
            path, mode = args[0], args[1]
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(mode, int):
                writing = bool(mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and isinstance(path, str | bytes):
                target = os.path.realpath(os.fsdecode(path))
                if not target.startswith(root + os.sep):
                    raise PermissionError(f"the grader sandbox does not allow writing {target}")

    sys.addaudithook(audit)
    return isolated


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout


def main() -> None:
    work = sys.argv[1]
    with open(os.path.join(work, "settings.json")) as handle:
        settings = json.load(handle)
    with open(os.path.join(work, "grader.py")) as handle:
        source = handle.read()
    with open(os.path.join(work, "items.jsonl")) as handle:
        items = [json.loads(line) for line in handle]
    out = sys.stdout
    isolated = confine(work, settings)
    out.write(json.dumps({"isolated_network": isolated}) + "\n")
    out.flush()
    namespace: dict = {"__name__": "grader"}
    try:
        exec(compile(source, "grader.py", "exec"), namespace)
        grade = namespace["grade"]
    except BaseException as exc:
        out.write(json.dumps({"fatal": f"{type(exc).__name__}: {exc}"[:500]}) + "\n")
        return
    signal.signal(signal.SIGALRM, _alarm)
    for item in items:
        signal.setitimer(signal.ITIMER_REAL, float(settings["timeout_seconds"]))
        try:
            value = grade(item["sample"], item["item"])
            signal.setitimer(signal.ITIMER_REAL, 0)
            score = float(value)
            line = (
                {"score": score}
                if math.isfinite(score)
                else {"error": f"not a finite number: {value!r}"[:200]}
            )
        except _Timeout:
            line = {"error": f"timed out after {settings['timeout_seconds']} s"}
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            line = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        out.write(json.dumps(line) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
