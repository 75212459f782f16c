"""Extraction rules of build-docs: which string literals are documentation blocks."""

from __future__ import annotations

from debops_ci.docsite.extract import extract_python, find_todos


def _blocks(source: str) -> list[tuple[int, str, str]]:
    result = extract_python(source.encode())
    assert result.problem is None
    return [(b.lineno, b.text, b.scope) for b in result.blocks]


def test_every_module_level_string_is_a_block_docstring_included() -> None:
    source = '"""Module doc."""\nimport os\n"""Second."""\nx = 1\n"third"\n'
    assert _blocks(source) == [(1, "Module doc.", ""), (3, "Second.", ""), (5, "third", "")]


def test_strings_inside_if_try_with_for_at_module_level_are_not_blocks() -> None:
    source = (
        "if True:\n    'in if'\nelse:\n    'in else'\n"
        "try:\n    'in try'\nexcept Exception:\n    'in except'\nfinally:\n    'in finally'\n"
        "with open('x') as f:\n    'in with'\n"
        "for i in []:\n    'in for'\n"
        "while False:\n    'in while'\n"
        "'kept'\n"
    )
    assert [text for _l, text, _s in _blocks(source)] == ["kept"]


def test_function_docstring_is_skipped_and_later_strings_are_blocks() -> None:
    source = 'def f():\n    """Doc."""\n    x = 1\n    """Block one."""\n    "Block two"\n'
    assert _blocks(source) == [(4, "Block one.", "f"), (5, "Block two", "f")]


def test_first_string_is_skipped_even_when_not_the_first_statement() -> None:
    source = 'def f():\n    x = 1\n    """Not a docstring to Python, skipped all the same."""\n'
    source += '    """The block."""\n'
    assert _blocks(source) == [(4, "The block.", "f")]


def test_class_bodies_and_methods() -> None:
    source = (
        "class C:\n"
        '    """Class doc."""\n'
        '    """Class block."""\n'
        "    def m(self):\n"
        '        """Method doc."""\n'
        '        """Method block."""\n'
    )
    assert _blocks(source) == [(3, "Class block.", "C"), (6, "Method block.", "C.m")]


def test_async_def_and_nested_scopes_at_any_depth() -> None:
    source = (
        "async def a():\n"
        "    'doc'\n"
        "    'async block'\n"
        "def outer():\n"
        "    def inner():\n"
        "        'doc'\n"
        "        'inner block'\n"
        "    class Local:\n"
        "        'doc'\n"
        "        'local block'\n"
        "if True:\n"
        "    def guarded():\n"
        "        'doc'\n"
        "        'guarded block'\n"
    )
    assert _blocks(source) == [
        (3, "async block", "a"),
        (7, "inner block", "outer.inner"),
        (10, "local block", "outer.Local"),
        (14, "guarded block", "guarded"),
    ]


def test_strings_nested_in_statements_of_a_function_are_not_blocks() -> None:
    source = "def f():\n    'doc'\n    if x:\n        'nested'\n    'kept'\n"
    assert _blocks(source) == [(5, "kept", "f")]


def test_blocks_are_dedented_and_keep_their_start_line() -> None:
    source = 'x = 1\n\n"""\n    # Title\n\n    | a | b |\n      indented\n    """\n'
    assert _blocks(source) == [(3, "# Title\n\n| a | b |\n  indented", "")]


def test_only_plain_string_expressions_count() -> None:
    source = "f'fstring {x}'\nb'bytes'\n42\n...\nx = 'assigned'\n'plain'\n"
    assert [text for _l, text, _s in _blocks(source)] == ["plain"]


def test_a_syntax_error_is_a_problem_with_its_line() -> None:
    result = extract_python(b"'ok'\n\ndef broken(:\n    pass\n")
    assert result.blocks == ()
    assert result.problem is not None
    assert result.problem.lineno == 3
    assert result.problem.message.startswith("syntax error")


def test_null_bytes_are_a_problem_not_a_crash() -> None:
    result = extract_python(b"x = 1\0\n")
    assert result.problem is not None


def test_todos_in_comments_and_blocks_with_their_lines() -> None:
    source = (
        '"""Intro.\n\nTODO: write more\n"""\n'
        "x = 1  # FIXME: off by one\n"
        "s = '# TODO inside a string is not a comment'\n"
        "# TODO(alice) rename\n"
    )
    result = extract_python(source.encode())
    found = [(t.lineno, t.kind, t.text, t.block) for t in result.todos]
    assert found == [
        (3, "TODO", "write more", 1),
        (5, "FIXME", "off by one", None),
        (7, "TODO", "(alice) rename", None),
    ]


def test_todo_word_boundaries() -> None:
    assert find_todos(b"# TODOS and MYFIXME are not markers\n") == []
    assert [t.kind for t in find_todos(b"# fix: FIXME now\n")] == ["FIXME"]
