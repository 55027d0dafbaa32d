"""The shape of the code, kept by the suite: no function in src/ longer than a screen, and no
issue-tracker numbers in code, configs or comments (they mean nothing to a reader of the code)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
LONGER_ALLOWED: dict[str, str] = {}
"""`module:function` -> why it may be longer (none today)."""


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield node.name, start, node.end_lineno - start + 1


def test_no_function_in_src_is_longer_than_a_screen():
    long = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        module = path.relative_to(ROOT / "src").with_suffix("").as_posix().replace("/", ".")
        for name, line, length in _functions(path):
            if length > MAX_FUNCTION_LINES and f"{module}:{name}" not in LONGER_ALLOWED:
                long.append(f"{module}:{name} (line {line}, {length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_the_shape_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert [length for _, _, length in _functions(tmp_path / "m.py")] == [MAX_FUNCTION_LINES + 1]


def test_no_issue_numbers_in_code_configs_or_comments():
    pattern = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
    found = []
    folders = ("src", "tests", "bench", "configs")
    for path in (p for folder in folders for p in (ROOT / folder).rglob("*")
                 if p.suffix in (".py", ".yaml", ".sh", ".js", ".html", ".css")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
