"""Documentation blocks and TODOs of one Python file, by parsing only (`ast`, `tokenize`).

The code is never imported or run. The original tool's rules, kept:

- every string expression directly in the module body is a block (the module
  docstring included); strings nested in `if`/`try`/`with`/loops are not;
- in a function or class body, every direct string expression is a block except the
  first one, which is its docstring, even when that first string is not the first
  statement.

New: `async def`, and functions and classes nested at any depth (also inside `if` or
`try`), follow the same rule; blocks are dedented (`inspect.cleandoc`); `TODO`/`FIXME`
in comments and in blocks are collected with their line numbers.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from dataclasses import dataclass

__all__ = ["Block", "Extracted", "Problem", "Todo", "extract_python", "find_todos", "todos_in_text"]

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_TODO = re.compile(r"\b(TODO|FIXME)\b[\s:]*(.*)")


@dataclass(frozen=True)
class Block:
    """One documentation block: where its string starts, its dedented text, its scope."""

    lineno: int
    text: str
    scope: str = ""  # "" for the module, else e.g. "Class.method"


@dataclass(frozen=True)
class Todo:
    """A `TODO` or `FIXME`; `block` is the line of the block holding it (None: a comment)."""

    lineno: int
    kind: str
    text: str
    block: int | None = None


@dataclass(frozen=True)
class Problem:
    """Why a file was skipped (`path:lineno: message` when reported)."""

    lineno: int
    message: str


@dataclass(frozen=True)
class Extracted:
    blocks: tuple[Block, ...] = ()
    todos: tuple[Todo, ...] = ()
    problem: Problem | None = None


def _string_of(stmt: ast.stmt) -> ast.Constant | None:
    if (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    ):
        return stmt.value
    return None


def _scope_blocks(body: list[ast.stmt], scope: str, skip_first: bool) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    skipped = not skip_first
    for stmt in body:
        node = _string_of(stmt)
        if node is None:
            continue
        if not skipped:
            skipped = True  # the docstring, wherever it stands
            continue
        found.append((node.lineno, str(node.value), scope))
    return found


def _walk_scopes(node: ast.AST, qualname: str, out: list[tuple[int, str, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            name = f"{qualname}.{child.name}" if qualname else child.name
            out.extend(_scope_blocks(child.body, name, skip_first=True))
            _walk_scopes(child, name, out)
        elif isinstance(child, ast.stmt | ast.ExceptHandler | ast.match_case):
            _walk_scopes(child, qualname, out)


def todos_in_text(text: str, lineno: int, block: int | None) -> list[Todo]:
    found = []
    for offset, line in enumerate(text.splitlines()):
        match = _TODO.search(line)
        if match:
            found.append(Todo(lineno + offset, match.group(1), match.group(2).strip(), block))
    return found


def find_todos(source: bytes) -> list[Todo]:
    """`TODO`/`FIXME` in the comments of `source` (tokenize: never inside strings)."""
    if b"TODO" not in source and b"FIXME" not in source:
        return []  # tokenize is the slow part: skip files that cannot match
    found = []
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT:
                found.extend(todos_in_text(token.string, token.start[0], None))
    except (tokenize.TokenError, SyntaxError):
        pass  # the parse error is reported by extract_python
    return found


def extract_python(source: bytes) -> Extracted:
    """Blocks and TODOs of one file's bytes; a file that does not parse gives a `Problem`."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return Extracted(problem=Problem(exc.lineno or 1, f"syntax error: {exc.msg}"))
    except (ValueError, RecursionError, MemoryError) as exc:
        return Extracted(problem=Problem(1, f"cannot parse: {exc}"))
    raw = _scope_blocks(tree.body, "", skip_first=False)
    _walk_scopes(tree, "", raw)
    raw.sort(key=lambda item: item[0])
    blocks = tuple(Block(lineno, inspect.cleandoc(text), scope) for lineno, text, scope in raw)
    todos = find_todos(source)
    for lineno, text, _scope in raw:
        todos.extend(todos_in_text(text, lineno, lineno))
    todos.sort(key=lambda t: t.lineno)
    return Extracted(blocks, tuple(todos))
