"""Code scorer: run the function a model wrote against the item's tests (HumanEval style, pass@1).

The item's ``target`` is test code defining ``check(candidate)``; ``metadata["entry_point"]``
names the function under test and ``metadata["prompt_code"]`` (optional) is the signature and
docstring the model was given. The scorer pulls the code out of the response, builds

    <prompt_code> + <code> + <target> + check(<entry_point>) + <print a one-time sentinel>

and runs it in the sandbox (``rankgate.eval.sandbox``; never in-process). The score is 1.0 iff
the program exits 0 within the limits AND printed the sentinel, so ``sys.exit(0)`` or
``os._exit(0)`` before the tests ran is a failure, not a pass.

Extraction, in order: the last ```python fenced block that defines the entry point (plus any
imports/functions/classes from the response's other Python blocks it does not define itself,
so helpers in a separate block still count); else the last Python block; else, unfenced, the
whole response or the code span inside prose. Code that does not define the entry point is
taken as the function's body when ``prompt_code`` is known (HumanEval completions). The prompt
code goes first so its imports (``from typing import List``) and helper functions exist even
when the response repeats only the function; a response's own definitions override it.
"""

from __future__ import annotations

import ast
import re
import secrets
import textwrap
from dataclasses import dataclass

from rankgate.eval.sandbox import SandboxResult, run_python
from rankgate.eval.scorers.base import Item, PureScorer, Score

_PYTHON_TAGS = {"", "python", "python3", "py", "py3", "ipython"}
_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.#-]*)[^\n`]*$")
_CHECK_DEF = re.compile(r"^def[ \t]+check[ \t]*\(", re.M)
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_MAX_TRIM_LINES = 200  # how many trailing prose lines we try to cut from unfenced code


@dataclass(frozen=True)
class _Block:
    lang: str
    code: str


class CodeScorer(PureScorer):
    """pass@1 on HumanEval-style tests; see the module docstring for extraction rules."""

    name = "code"

    def __init__(self, timeout_s: float = 10, memory_mb: int = 512) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb

    def check(self, item: Item) -> None:
        target, meta = item.target, item.metadata or {}
        if not isinstance(target, str) or not _CHECK_DEF.search(target):
            raise ValueError("code target must be test code defining `def check(candidate)`")
        error = _compile_error(target)
        if error is not None:
            raise ValueError(f"code target does not compile: {error}")
        entry = meta.get("entry_point")
        if not isinstance(entry, str) or not _IDENTIFIER.match(entry):
            raise ValueError("code item needs metadata.entry_point (a function name)")
        prompt_code = meta.get("prompt_code")
        if prompt_code is not None:
            if not isinstance(prompt_code, str):
                raise ValueError("metadata.prompt_code must be a string")
            error = _compile_error(prompt_code)
            if error is not None:
                raise ValueError(f"metadata.prompt_code does not compile: {error}")

    def score(self, response: str, item: Item) -> Score:
        try:
            self.check(item)
        except ValueError as e:
            return Score(0.0, f"unusable item: {e}")
        if not isinstance(response, str) or not response.strip():
            return Score(0.0, "empty response")
        entry = item.metadata["entry_point"]
        prompt_code = item.metadata.get("prompt_code") or ""
        solution = build_solution(response, entry, prompt_code)
        if solution.program is None:
            return Score(0.0, solution.problem or "no testable code", solution.extracted)
        code = solution.extracted
        sentinel = f"rankgate-tests-passed-{secrets.token_hex(16)}"
        program = (f"{solution.program}\n\n{item.target}\n\ncheck({entry})\n"
                   "import os as _rg_os, sys as _rg_sys\n"
                   "_rg_sys.stdout.flush()\n"
                   f"_rg_os.write(1, b'\\n{sentinel}\\n')\n")
        result = run_python(program, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        if result.passed and sentinel in result.stdout_tail:
            return Score(1.0, "passed", code)
        return Score(0.0, _failure(result, sentinel in result.stdout_tail), code)


@dataclass(frozen=True)
class Solution:
    """What the scorer made of a response."""

    extracted: str  # the code found in the response (what ``Score.extracted`` reports)
    program: str | None  # the code to test (prompt code first), None when it cannot pass
    problem: str | None = None  # why it cannot pass (no code, syntax error, wrong name)


def build_solution(response: str, entry_point: str, prompt_code: str = "") -> Solution:
    """Find the code in ``response`` and make it a testable module (see the module docstring)."""
    blocks = [b for b in _fenced_blocks(response) if b.lang in _PYTHON_TAGS]
    if blocks:
        defining = [b for b in blocks if entry_point in _top_level_names(b.code)]
        if defining:
            primary = defining[-1]
            support = _support(blocks, primary, entry_point)
            code = (support + "\n\n" + primary.code) if support else primary.code
        else:
            code = blocks[-1].code
    elif _fenced_blocks(response):
        return Solution("", None, "no Python code block in the response")
    else:
        code = _unfenced_code(response, entry_point)
    code = _strip_main_guard(code)
    if not code.strip():
        return Solution(code, None, "no Python code in the response")
    if entry_point in _top_level_names(code):
        prefix = (prompt_code.rstrip() + "\n\n") if prompt_code else ""
        return Solution(code, prefix + code)
    functions = _top_level_functions(code) if _compile_error(code) is None else []
    if functions:  # a complete module with other functions: a wrong name, not a body
        return Solution(code, None, f"no function named {entry_point!r} in the response "
                                    f"(found: {', '.join(functions)})")
    if prompt_code:
        body = _as_body(prompt_code, code)
        if body is not None:
            return Solution(code, body)
    error = _compile_error(code)
    if error is not None and not blocks and not any(map(_CODE_START.match, code.splitlines())):
        return Solution(code, None, f"no recognisable Python code (syntax error: {error})")
    if error is not None:
        return Solution(code, None, f"syntax error: {error}")
    return Solution(code, None, f"no function named {entry_point!r} in the response")


def _fenced_blocks(text: str) -> list[_Block]:
    """Markdown fenced blocks in order. A closing fence glued to the end of the last code line
    closes the block too; an unclosed last block runs to the end (a truncated answer)."""
    blocks: list[_Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        i += 1
        if not m:
            continue
        fence, lang = m.group(1)[:3], m.group(2).lower()
        body: list[str] = []
        while i < len(lines):
            line = lines[i].rstrip()
            i += 1
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                break
            if line.endswith(fence):
                body.append(line[:-3])
                break
            body.append(line)
        blocks.append(_Block(lang, textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
    return blocks


def _unfenced_code(response: str, entry_point: str) -> str:
    """The whole response if it is code; else the code span inside surrounding prose."""
    text = response.strip("\n")
    if _compile_error(text) is None:
        return text
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    if not starts:
        return text  # maybe an indented body, or broken code: the caller decides
    best = None
    for start in starts[:20]:
        end = len(lines)
        while end > start and len(lines) - end <= _MAX_TRIM_LINES:
            span = "\n".join(lines[start:end])
            if _compile_error(span) is None:
                if entry_point in _top_level_names(span):
                    return span
                best = best or span
                break
            end -= 1
    return best or text


def _support(blocks: list[_Block], primary: _Block, entry_point: str) -> str:
    """Imports and definitions from the other Python blocks that the primary one lacks."""
    have = _top_level_names(primary.code)
    parts: list[str] = []
    for block in blocks:
        if block is primary:
            continue
        try:
            tree = ast.parse(block.code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                parts.append(ast.get_source_segment(block.code, node) or "")
            elif (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                  and node.name != entry_point and node.name not in have):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                parts.append("\n".join(block.code.splitlines()[start - 1:node.end_lineno]))
                have.add(node.name)
    return "\n\n".join(p for p in parts if p)


def _as_body(prompt_code: str, code: str) -> str | None:
    """``prompt_code`` completed with ``code`` as the function body, if that compiles."""
    head = prompt_code.rstrip() + "\n"
    first = next((line for line in code.splitlines() if line.strip()), "")
    tries = [head + code] if first[:1] in (" ", "\t") else []
    tries.append(head + textwrap.indent(textwrap.dedent(code), "    "))
    for program in tries:
        if _compile_error(program) is None:
            return program
    return None


def _strip_main_guard(code: str) -> str:
    """Drop top-level ``if __name__ == "__main__":`` blocks: demos, not the answer (and they
    may wait for input)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return code
    lines = code.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            del lines[node.lineno - 1:node.end_lineno]
    return "\n".join(lines) + "\n"


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _top_level_names(code: str) -> set[str]:
    """Names a module defines at top level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _top_level_functions(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _compile_error(code: str) -> str | None:
    """Why ``code`` does not compile as a module (None if it does). Compiling runs nothing."""
    try:
        compile(code, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"{e.msg} (line {e.lineno})"
    except (ValueError, RecursionError, MemoryError, OverflowError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def _failure(result: SandboxResult, saw_sentinel: bool) -> str:
    """One short line saying why a run did not pass."""
    if result.timed_out:
        return "timeout: " + result.reason.removeprefix("timed out ")
    if result.returncode == 0 and not saw_sentinel:
        return "exited before the tests finished (sys.exit/os._exit?)"
    last = next((line.strip() for line in reversed(result.stderr_tail.splitlines())
                 if line.strip()), "")
    if last.startswith("AssertionError"):
        detail = last.partition(":")[2].strip()[:100]
        return "failed assertion" + (f": {detail}" if detail else "")
    if last.startswith(("SyntaxError", "IndentationError", "TabError")):
        return f"syntax error: {last[:120]}"
    if result.returncode is not None and result.returncode < 0:
        return result.reason
    return f"error: {last[:160]}" if last else result.reason
