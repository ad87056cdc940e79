"""Keep the house easy to read: no module over MAX_MODULE_LINES lines (services/, tuneforge/, tools/,
bench/; generated stubs excepted), no function over MAX_FUNCTION_LINES lines in services/.

    python tools/check_structure.py        # exit 1 and name every offender

A function's length counts from its `def` to its last line, nested functions included; a longer one
wants splitting into named steps. EXCEPTIONS lists what is allowed past the limit, with the reason.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80
MODULE_ROOTS = ("services", "tuneforge", "tools", "bench")
FUNCTION_ROOTS = ("services", "tuneforge")
# "path:qualified.function" -> why it may be longer.
EXCEPTIONS: dict[str, str] = {}


def _generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")) or "migrations" in path.parts


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            out += _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out.append((f"{prefix}{node.name}", (node.end_lineno or node.lineno) - start + 1))
    return out


def offenders() -> list[str]:
    found = []
    for root in MODULE_ROOTS:
        for path in sorted((ROOT / root).rglob("*.py")):
            if _generated(path):
                continue
            relative = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            lines = text.count("\n") + 1
            if lines > MAX_MODULE_LINES and relative not in EXCEPTIONS:
                found.append(f"{relative}: {lines} lines (at most {MAX_MODULE_LINES}; split it)")
            if root not in FUNCTION_ROOTS:
                continue
            for name, length in _functions(ast.parse(text)):
                key = f"{relative}:{name}"
                if length > MAX_FUNCTION_LINES and key not in EXCEPTIONS:
                    found.append(f"{key}: {length} lines (at most {MAX_FUNCTION_LINES}; split it)")
    return found


def main() -> int:
    found = offenders()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
