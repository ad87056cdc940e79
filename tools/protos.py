"""Generate the Python stubs from `protos/`, or check that the committed ones are current.

    python tools/protos.py            # regenerate tuneforge/**/v1/*_pb2*.py(i)
    python tools/protos.py --check    # exit 1 when the committed stubs differ from a fresh build

The proto folders mirror the Python package (`protos/tuneforge/x/v1/` generates `tuneforge/x/v1/`),
so generated imports need no rewriting.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every `.proto` under `protos/`, writing into `out_dir`; return the files made."""
    sources = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    made = sorted(p for p in (out_dir / "tuneforge").rglob("*") if p.name.endswith(GENERATED_SUFFIXES))
    for package_dir in {p.parent for p in made}:
        # Each generated folder is a package, as are the folders above it inside `tuneforge/`.
        for folder in [package_dir, *package_dir.parents]:
            if folder == out_dir:
                break
            (folder / "__init__.py").touch()
    return made


def committed_files() -> set[Path]:
    return {
        p.relative_to(ROOT) for p in (ROOT / "tuneforge").rglob("*") if p.name.endswith(GENERATED_SUFFIXES)
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the committed stubs are stale")
    options = parser.parse_args()
    if not options.check:
        for stale in committed_files():
            (ROOT / stale).unlink()
        made = generate(ROOT)
        print(f"generated {len(made)} files")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        fresh = {p.relative_to(fresh_root) for p in generate(fresh_root)}
        current = committed_files()
        stale = sorted(str(p) for p in fresh ^ current)
        stale += sorted(
            str(p) for p in fresh & current if not filecmp.cmp(fresh_root / p, ROOT / p, shallow=False)
        )
    if stale:
        print("generated stubs are stale; run `python tools/protos.py`:", *stale, sep="\n  ", file=sys.stderr)
        return 1
    print("generated stubs are current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
