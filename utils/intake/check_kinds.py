"""Tell a JavaScript check from a plain-English one, with a real JavaScript parser.

Graders send JavaScript checks without any prefix (``document.title === "Sales
Summary 601"``) next to plain-English ones ("about.md contains exactly three
words"). A string is JavaScript when it parses as one JavaScript expression
(tree-sitter's JavaScript grammar, current ECMAScript: optional chaining,
arrow functions, ``await``, template literals) and is not prose that happens
to parse: a lone identifier or literal ("Loaded", "42"), words joined by
hyphens or slashes ("Mobile-friendly", "Responsive/mobile"), or a comma list
of bare words ("Hello, world"). Why a parser in Python rather than Chromium's own
``new Function``: requests are classified at validation, before any browser is
started, also when the self-check is off, and the prompt's DOM contract needs
the answer before generation; tree-sitter parses in microseconds and ships as
wheels.

Never evaluates anything: it only parses text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# An expression made only of these is a word, a number, a hyphenated or slashed compound ("Mobile-friendly"
# parses as a subtraction) or a list of them: prose, not a check.
_PROSE_NODES = frozenset({"identifier", "sequence_expression", "binary_expression", "-", "/", "string", "number",
                          "true", "false", "null", "undefined", "string_fragment", '"', "'", ","})
MAX_CHARS = 20_000


@lru_cache(maxsize=1)
def _parser() -> Any:
    """The tree-sitter parser for JavaScript, built once (imported on first use)."""
    import tree_sitter  # why: the parser and its grammar load on the first classification, not on import main
    import tree_sitter_javascript  # why: as above

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_javascript.language()))


def is_javascript(text: str) -> bool:
    """True when ``text`` parses as one JavaScript expression that is not a bare word, literal, compound or list."""
    expression = _expression(text)
    return expression is not None and not _is_prose(expression)


def parses_as_expression(text: str) -> bool:
    """True when ``text`` parses as one JavaScript expression (prose or not)."""
    return _expression(text) is not None


def _expression(text: str) -> Any | None:
    """The syntax node of ``text`` parsed as one parenthesised expression, or None."""
    source = text.strip().rstrip(";").strip()
    if not source or len(source) > MAX_CHARS:
        return None
    root = _parser().parse(("(\n" + source + "\n)").encode("utf-8")).root_node
    if root.has_error or root.child_count != 1 or root.children[0].type != "expression_statement":
        return None
    statement = root.children[0]
    if statement.child_count != 1 or statement.children[0].type != "parenthesized_expression":
        return None
    return statement.children[0].children[1]


def _is_prose(node: Any) -> bool:
    """True when every node under ``node`` is a word, a literal, a comma, or a hyphen or slash between them."""
    if node.type not in _PROSE_NODES:
        return False
    return all(_is_prose(child) for child in node.children)
