"""Marker blocks in a Markdown file: the only parts of a doc that are generated.

A block is ``<!-- generated: NAME (from docs/results/PATH.json) -->`` on a line of its own,
the generated text, and ``<!-- end generated -->``. Everything outside the blocks is
hand-written and left exactly as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_BLOCK = re.compile(
    r"^<!-- generated: (?P<name>[\w./-]+) \(from (?P<source>[^)\s]+)\) -->\n"
    r"(?P<body>.*?)"
    r"^<!-- end generated -->$",
    re.MULTILINE | re.DOTALL,
)
END = "<!-- end generated -->"
_OPEN = re.compile(r"^<!-- generated:", re.MULTILINE)


class BlockError(ValueError):
    """A doc's markers are malformed: named with the doc and the line."""


@dataclass(frozen=True)
class Block:
    name: str
    source: Path


def blocks(text: str, doc: Path) -> list[Block]:
    found = [Block(m["name"], Path(m["source"])) for m in _BLOCK.finditer(text)]
    opened = len(_OPEN.findall(text))
    if opened != len(found):
        raise BlockError(
            f"{doc}: {opened} '<!-- generated:' markers but {len(found)} complete blocks "
            "(each needs '(from PATH)' and a closing '<!-- end generated -->' line)"
        )
    return found


def rewrite(text: str, doc: Path, render: Callable[[Block], str]) -> str:
    """The doc with every block's body replaced by ``render(block)``."""
    blocks(text, doc)  # malformed markers fail before anything is replaced

    def replace(match: re.Match[str]) -> str:
        block = Block(match["name"], Path(match["source"]))
        body = render(block).strip("\n")
        opening = f"<!-- generated: {block.name} (from {block.source}) -->"
        return f"{opening}\n{body}\n{END}"

    return _BLOCK.sub(replace, text)
