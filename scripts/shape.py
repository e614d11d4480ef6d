#!/usr/bin/env python3
"""Measure the shape of a Python package: python3 scripts/shape.py [PACKAGE_DIR].

Prints one line per rule (its verdict and the offending places), then a summary;
exits 1 when a rule fails, 0 when all hold, 2 when a file cannot be parsed.
Standard library only. The rules:

  function-length   no def / async def (methods, nested ones too) over 60 lines,
                    counted from the def line to the last line of its body
  class-length      no class over 300 lines
  destination-choice  LocalDestination, SshDestination and is_remote referenced (used,
                    called, imported) only in destination/__init__.py (the factory) and
                    the modules that define them (destination/local.py, destination/ssh.py);
                    no isinstance(x, <Something>Destination) anywhere else
  process-start     only process.py imports subprocess, sh, pty, multiprocessing or
                    uses os.system, os.popen, os.spawn*, os.exec*, os.fork*, os.posix_spawn*
  duplicate-blocks  no 8 lines repeated between two places (two modules, or two places
                    of one), as they are or with other names: identifiers, strings and
                    numbers become placeholders, keywords, operators and punctuation stay,
                    whitespace folds. Blank and comment-only lines, docstrings, imports
                    and lone closing punctuation are left out first. The 8 lines come in
                    the same order on both sides, with at most one other line (a line
                    changed, added or dropped) between two of them on either side.
                    A window of 8 whose lines are mostly thin does not count: thin is
                    a line of under 3 tokens, a decorator, a class header, an assignment
                    in a module or class body (constants, dataclass fields), a parameter
                    on a line of its own. Overlapping windows of one pair are reported
                    as one range: a.py:10-24 ~ b.py:40-54.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import sys
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
WINDOW = 8  # lines repeated that make a duplicate
GAP = 1  # other lines allowed between two repeated ones, on either side
MAX_THIN = WINDOW // 2  # a window with more thin lines than this is boilerplate
THIN_TOKENS = 3  # a line of fewer tokens (after normalisation) is thin

FACTORY = "destination/__init__.py"
DESTINATION_MODULES = {FACTORY, "destination/local.py", "destination/ssh.py"}
CHOOSERS = {"LocalDestination", "SshDestination", "is_remote"}
PROCESS_MODULE = "process.py"
PROCESS_IMPORTS = {"subprocess", "sh", "pty", "multiprocessing"}
OS_PROCESS = re.compile(r"(system|popen|spawn\w*|exec\w*|fork\w*|posix_spawn\w*)\Z")
LONE_PUNCT = {")", "]", "}", ":", ",", "->", ";"}
SKIPPED_TOKENS = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
    tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER,
}  # fmt: skip
FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+
FSTRING_END = getattr(tokenize, "FSTRING_END", None)


@dataclass
class Module:
    rel: str  # inside the package, "/"-separated: "destination/ssh.py"
    shown: str  # as printed: "klink_sync/destination/ssh.py"
    source: str
    tree: ast.Module
    nodes: list[ast.AST] = field(default_factory=list)  # every node, once walked
    defs: list[tuple[str, ast.AST]] = field(default_factory=list)  # qualified name, node

    def __post_init__(self) -> None:
        self.nodes = list(ast.walk(self.tree))
        self.defs = list(walk_named(self.tree))


@dataclass(frozen=True)
class Line:
    row: int
    shape: str
    thin: bool


# ----------------------------------------------------------------------------- loading


def load(package: Path) -> list[Module]:
    """Every .py file below package (not __pycache__ nor hidden folders), parsed."""
    modules = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        modules.append(Module(rel.as_posix(), f"{package.name}/{rel.as_posix()}", source, tree))
    return modules


def walk_named(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function and class, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from walk_named(node, f"{name}.")
        else:
            yield from walk_named(node, prefix)


# ----------------------------------------------------------------------------- rules 1, 2


def too_long(modules: list[Module], kinds: tuple[type, ...], limit: int) -> list[str]:
    """file:line name length of each node of these kinds longer than limit lines."""
    found = []
    for mod in modules:
        for name, node in mod.defs:
            length = node.end_lineno - node.lineno + 1  # lineno: the def line, not decorators
            if isinstance(node, kinds) and length > limit:
                found.append(f"{mod.shown}:{node.lineno} {name} {length}")
    return found


def long_functions(modules: list[Module]) -> list[str]:
    return too_long(modules, (ast.FunctionDef, ast.AsyncFunctionDef), MAX_FUNCTION_LINES)


def long_classes(modules: list[Module]) -> list[str]:
    return too_long(modules, (ast.ClassDef,), MAX_CLASS_LINES)


# ----------------------------------------------------------------------------- rule 3


def named(node: ast.AST) -> str | None:
    """The last part of a name or attribute: x -> x, a.b.x -> x."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def isinstance_destinations(node: ast.AST) -> list[str]:
    """The <Something>Destination classes an isinstance(x, ...) call tests for (not the
    interface, Destination, alone)."""
    if not (isinstance(node, ast.Call) and named(node.func) == "isinstance"
            and len(node.args) == 2):  # fmt: skip
        return []
    kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
    return [n for n in map(named, kinds) if n and n.endswith("Destination") and n != "Destination"]


def chooser_references(node: ast.AST) -> list[str]:
    """LocalDestination, SshDestination, is_remote as used or imported by this node."""
    if isinstance(node, (ast.Name, ast.Attribute)):
        return [n for n in [named(node)] if n in CHOOSERS]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [a.name for a in node.names if a.name.rpartition(".")[2] in CHOOSERS]
    return []


def destination_choices(modules: list[Module]) -> list[str]:
    """Where a destination class is chosen outside the factory."""
    found = set()
    for mod in modules:
        if mod.rel in DESTINATION_MODULES:
            continue
        for node in mod.nodes:
            found.update((mod.shown, node.lineno, name) for name in chooser_references(node))
            found.update((mod.shown, node.lineno, f"isinstance {name}")
                         for name in isinstance_destinations(node))  # fmt: skip
    return places(found)


def places(found: set[tuple[str, int, str]]) -> list[str]:
    """file:line what, in file and line order."""
    return [f"{shown}:{line} {what}" for shown, line, what in sorted(found)]


# ----------------------------------------------------------------------------- rule 4


def process_uses(node: ast.AST) -> list[str]:
    """What in this node starts processes: the modules imported, os.system and its kin."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "os":
            return [f"os.{a.name}" for a in node.names if OS_PROCESS.match(a.name)]
        names = [node.module]
    elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id == "os" and OS_PROCESS.match(node.attr)):  # fmt: skip
        return [f"os.{node.attr}"]
    else:
        return []
    return [n for n in names if n.partition(".")[0] in PROCESS_IMPORTS]


def process_starts(modules: list[Module]) -> list[str]:
    """Where a process could be started outside process.py."""
    found = set()
    for mod in modules:
        if mod.rel == PROCESS_MODULE:
            continue
        for node in mod.nodes:
            found.update((mod.shown, node.lineno, what) for what in process_uses(node))
    return places(found)


# ----------------------------------------------------------------------------- rule 5


def rows_of(node: ast.AST) -> range:
    return range(node.lineno, node.end_lineno + 1)


def has_docstring(node: ast.AST) -> bool:
    body = getattr(node, "body", None)
    return (isinstance(body, list) and bool(body) and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str))  # fmt: skip


def left_out_rows(nodes: list[ast.AST]) -> set[int]:
    """Rows of docstrings and imports: not compared."""
    rows: set[int] = set()
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            rows.update(rows_of(node))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if has_docstring(node):
                rows.update(rows_of(node.body[0]))
    return rows


def declaration_rows(nodes: list[ast.AST]) -> set[int]:
    """Rows that declare rather than do: thin. Decorators, class headers, assignments in a
    module or class body (constants, `name: type = value` fields), a signature's parameters
    on lines of their own."""
    rows: set[int] = set()
    for node in nodes:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            rows.update(r for d in node.decorator_list for r in rows_of(d))
        if isinstance(node, ast.ClassDef):
            rows.add(node.lineno)
        if isinstance(node, (ast.Module, ast.ClassDef)):
            for stmt in node.body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    rows.update(rows_of(stmt))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [p for p in ast.walk(node.args) if hasattr(p, "end_lineno")]
            rows.update(r for p in params for r in rows_of(p) if r != node.lineno)
    return rows


def token_shapes(source: str) -> dict[int, list[str]]:
    """Row -> its tokens with names, strings and numbers as placeholders (N, S, 0)."""
    rows: dict[int, list[str]] = defaultdict(list)
    depth = 0  # inside an f-string (3.12+ tokenizes its parts)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == FSTRING_START:
            depth += 1
            if depth == 1:
                rows[tok.start[0]].append("S")
        elif tok.type == FSTRING_END:
            depth -= 1
        elif depth == 0 and tok.type not in SKIPPED_TOKENS:
            rows[tok.start[0]].append(placeholder(tok))
    return rows


def placeholder(tok: tokenize.TokenInfo) -> str:
    if tok.type == tokenize.NAME:
        return tok.string if keyword.iskeyword(tok.string) else "N"
    if tok.type == tokenize.STRING:
        return "S"
    if tok.type == tokenize.NUMBER:
        return "0"
    return tok.string


def code_lines(mod: Module) -> list[Line]:
    """The lines compared: no blank, comment-only, docstring, import, lone punctuation."""
    skip, declared = left_out_rows(mod.nodes), declaration_rows(mod.nodes)
    lines = []
    for row, tokens in sorted(token_shapes(mod.source).items()):
        if row in skip or not tokens or set(tokens) <= LONE_PUNCT:
            continue
        thin = len(tokens) < THIN_TOKENS or row in declared
        lines.append(Line(row, " ".join(tokens), thin))
    return lines


Pair = tuple[int, int]  # (line in module a, line in module b), as indexes of code_lines


def same_shapes(all_lines: list[list[Line]]) -> dict[Pair, list[Pair]]:
    """(module a, module b) -> every pair of lines of one shape, a line never with itself
    nor with one of the WINDOW - 1 lines after it."""
    places: dict[str, list[Pair]] = defaultdict(list)
    for m, lines in enumerate(all_lines):
        for i, line in enumerate(lines):
            places[line.shape].append((m, i))
    pairs: dict[Pair, list[Pair]] = defaultdict(list)
    for spots in places.values():
        for k, (ma, ia) in enumerate(spots):
            for mb, ib in spots[k + 1:]:
                if ma != mb or ib - ia >= WINDOW:
                    pairs[ma, mb].append((ia, ib))
    return pairs


def chains(pairs: list[Pair]) -> list[list[Pair]]:
    """The longest runs of paired lines in the same order on both sides, with at most GAP
    other lines between two of them on either side (a line changed here and there)."""
    back: dict[Pair, tuple[int, Pair | None]] = {}  # pair -> (run length, pair before)
    for i, j in sorted(pairs):
        steps = [(i - di, j - dj) for di in range(1, GAP + 2) for dj in range(1, GAP + 2)]
        before = max((p for p in steps if p in back), key=lambda p: back[p][0], default=None)
        back[i, j] = (back[before][0] + 1 if before else 1, before)
    ends = set(back) - {before for _, before in back.values()}
    return [trace(back, end) for end in ends if back[end][0] >= WINDOW]


def trace(back: dict[Pair, tuple[int, Pair | None]], end: Pair | None) -> list[Pair]:
    run = []
    while end is not None:
        run.append(end)
        end = back[end][1]
    return run[::-1]


def counted(run: list[Pair], a: list[Line], b: list[Line], same: bool) -> list[list[int]]:
    """[a first, a last, b first, b last] of each WINDOW paired lines of the run that count:
    not mostly thin, and (within one module) not overlapping themselves."""
    spans = []
    for k in range(len(run) - WINDOW + 1):
        window = run[k:k + WINDOW]
        (a0, b0), (a1, b1) = window[0], window[-1]
        thin = sum(a[i].thin or b[j].thin for i, j in window)
        if thin <= MAX_THIN and not (same and b0 <= a1):
            spans.append([a0, a1, b0, b1])
    return spans


def merge(spans: list[list[int]]) -> list[list[int]]:
    """Spans of one pair of modules that overlap on both sides -> one span."""
    merged: list[list[int]] = []
    for a0, a1, b0, b1 in sorted(spans):
        for span in merged:
            if a0 <= span[1] and b0 <= span[3] and span[2] <= b1:
                span[:] = [span[0], max(span[1], a1), min(span[2], b0), max(span[3], b1)]
                break
        else:
            merged.append([a0, a1, b0, b1])
    return merged


def duplicates(modules: list[Module]) -> list[str]:
    """a.py:10-24 ~ b.py:40-54 for each block repeated (windows merged)."""
    all_lines = [code_lines(mod) for mod in modules]
    found = []
    for (ma, mb), pairs in sorted(same_shapes(all_lines).items()):
        a, b = all_lines[ma], all_lines[mb]
        spans = [s for run in chains(pairs) for s in counted(run, a, b, ma == mb)]
        for a0, a1, b0, b1 in merge(spans):
            found.append(f"{modules[ma].shown}:{a[a0].row}-{a[a1].row} ~ "
                         f"{modules[mb].shown}:{b[b0].row}-{b[b1].row}")  # fmt: skip
    return found


# ----------------------------------------------------------------------------- main

Rule = tuple[str, Callable[[list[Module]], list[str]]]
RULES: list[Rule] = [
    (f"function-length (no def over {MAX_FUNCTION_LINES} lines)", long_functions),
    (f"class-length (no class over {MAX_CLASS_LINES} lines)", long_classes),
    ("destination-choice (Local/SshDestination, is_remote only in destination/)",
     destination_choices),
    ("process-start (subprocess, sh, pty, os.system... only in process.py)", process_starts),
    (f"duplicate-blocks (no {WINDOW} lines repeated, renamed or not)", duplicates),
]  # fmt: skip


def check(modules: list[Module], rules: list[Rule] = RULES) -> list[tuple[str, list[str]]]:
    """(rule, offending places) for each rule."""
    return [(title, find(modules)) for title, find in rules]


def report(results: list[tuple[str, list[str]]]) -> str:
    """One line per rule (verdict, then the offending places), then the summary."""
    lines = []
    for title, found in results:
        lines.append(f"FAIL {title}: {len(found)}: {'; '.join(found)}" if found else f"ok   {title}")
    failed = sum(1 for _, found in results if found)
    lines.append(f"shape: {len(results) - failed} rules ok, {failed} failed")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    package = Path(argv[1] if len(argv) > 1 else "klink_sync")
    if not package.is_dir():
        print(f"shape: {package}: no such folder", file=sys.stderr)
        return 2
    try:
        modules = load(package)
    except (SyntaxError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        print(f"shape: cannot parse {getattr(exc, 'filename', package)}: {exc}", file=sys.stderr)
        return 2
    results = check(modules)
    print(report(results))
    return 1 if any(found for _, found in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
