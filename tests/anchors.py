"""Where a mutation of `make mutants` applies: a pattern inside a named function or class (its anchor), not a line.

The anchor (`"Class.method"`, `"function"`) is looked up in the mutation's file, and where the code has moved, in
every file of the product with the same suffix; the pattern must occur exactly once inside it. Whitespace is free
(a reformatted or re-wrapped call still matches: runs of whitespace, space inside brackets, a trailing comma), and
a pattern that begins or ends with a word matches whole words only; one that begins with a newline, only at the start
of a line. A
mutation whose anchor or pattern is gone is STALE; one whose mutant is no valid Python is BROKEN (a syntax error
would make any test fail and prove nothing). Files that are not Python (configs, docs, scripts) have no anchor: the
pattern must occur once in the whole file.
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PRODUCT = ("src", "conf", "tools")  # where moved code is looked for


@dataclass(frozen=True)
class Mutation:
    promise: str  # what breaks
    file: str  # relative to the repository root: where the anchor is looked for first
    anchor: str | None  # the function or class ("Class.method") the pattern lies in; None: the whole file
    pattern: str  # text inside the anchor, found there exactly once (whitespace may differ)
    mutant: str  # what replaces it
    test: str  # the pytest node id that must fail


def flexible(pattern: str) -> re.Pattern:
    """The pattern as a regex that ignores how the code is laid out."""
    line_start = pattern.startswith("\n")  # "\nname()": only where a line begins with it
    pattern = pattern.lstrip() if line_start else pattern
    parts = [r"(?m:^)[ \t]*"] if line_start else []
    for index, char in enumerate(pattern):
        if char.isspace():
            if not parts or parts[-1] != r"\s+":
                parts.append(r"\s+")
            continue
        if char in ")]}":
            parts.append(r"(?:,\s*)?\s*" if not (parts and parts[-1] == r"\s+") else r"(?:,\s*)?")
        parts.append(re.escape(char))
        if char in "([{" and index + 1 < len(pattern) and not pattern[index + 1].isspace():
            parts.append(r"\s*")
    # whole words at both ends: "lr: float" is not found inside "warmup_lr: float"
    start = r"(?<!\w)" if not line_start and (pattern[:1].isalnum() or pattern[:1] == "_") else ""
    end = r"(?!\w)" if pattern[-1:].isalnum() or pattern[-1:] == "_" else ""
    return re.compile(start + "".join(parts) + end)


def definitions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and class, nested ones as Outer.inner."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from definitions(node, f"{name}.")


def anchor_span(text: str, anchor: str) -> tuple[int, int] | None:
    """Where the anchor's source lies in a Python file's text (decorators included); None if it has none."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for name, node in definitions(tree):
        if name == anchor:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return offsets[first - 1], offsets[node.end_lineno]
    return None


def locate(root: Path, mutation: Mutation) -> tuple[Path, int, int] | str:
    """(file, start, end) of the one place the pattern matches, or why there is none (STALE)."""
    home = root / mutation.file
    if mutation.anchor is None:
        if not home.is_file():
            return f"{mutation.file} is gone"
        return one_match(home, 0, len(home.read_text()), mutation) or f"pattern not once in {mutation.file}"
    for path in [home, *elsewhere(root, home)]:
        if not path.is_file():
            continue
        span = anchor_span(path.read_text(), mutation.anchor)
        if span is not None:
            return (
                one_match(path, *span, mutation) or f"pattern not once in {mutation.anchor} ({path.relative_to(root)})"
            )
    return f"no {mutation.anchor} in {mutation.file} or elsewhere"


def elsewhere(root: Path, home: Path) -> list[Path]:
    return sorted(path for folder in PRODUCT for path in (root / folder).rglob(f"*{home.suffix}") if path != home)


def one_match(path: Path, start: int, end: int, mutation: Mutation) -> tuple[Path, int, int] | None:
    found = list(flexible(mutation.pattern).finditer(path.read_text(), start, end))
    return (path, found[0].start(), found[0].end()) if len(found) == 1 else None


def mutate(root: Path, mutation: Mutation) -> str:
    """Applies the mutation to the tree at root: "applied", or "STALE: …" / "BROKEN: …" with nothing changed."""
    where = locate(root, mutation)
    if isinstance(where, str):
        return f"STALE: {where}"
    path, start, end = where
    text = path.read_text()
    mutated = text[:start] + mutation.mutant + text[end:]
    if path.suffix == ".py":
        try:
            compile(mutated, str(path), "exec")
        except SyntaxError as error:
            return f"BROKEN: the mutant is no valid Python ({error.msg}, line {error.lineno})"
    path.write_text(mutated)
    return "applied"
