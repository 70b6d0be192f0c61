"""Shared by the puzzle tests: the dev set's path and a tokenizer checkable by hand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DEV = Path(__file__).resolve().parents[1] / "data" / "dev_puzzles.yaml"


class ToyTokenizer:
    """Hand-checkable tokenizer without offsets: a word with its leading space, or one other
    character; words of 7+ letters split before their last 3 characters (subwords)."""

    is_fast = False

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def _id(self, piece: str) -> int:
        if piece not in self.pieces:
            self.pieces.append(piece)
        return self.pieces.index(piece)

    def split(self, text: str) -> list[str]:
        out: list[str] = []
        for m in re.finditer(r" ?[A-Za-z]+| ?[^A-Za-z ]| ", text):
            p = m.group()
            out += [p[:-3], p[-3:]] if len(p.strip()) >= 7 else [p]
        return out

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [self._id(p) for p in self.split(text)]}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.pieces[i] for i in ids]

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(self.pieces[i] for i in ids)
