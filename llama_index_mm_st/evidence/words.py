"""Which words of a text match a query's words, by the rule the store's BM25 uses.

A word matches when Qdrant's BM25 tokeniser (``store.bm25.QdrantBm25``: its stop words and stemmer)
gives it a term the query also has, so "running" matches "run" and "the" matches nothing, exactly as
the word ranking that found the hit. Terms are compared, never re-tokenised here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator, Optional

WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)
"""A word of a text, for locating it (the tokeniser decides what it means)."""


@lru_cache(maxsize=8)
def _bm25(language: str):  # type: ignore[no-untyped-def]
    from ..store.bm25 import QdrantBm25

    return QdrantBm25(language)


class QueryTerms:
    """The query's BM25 terms, and a test of any text against them."""

    def __init__(self, text: Optional[str], language: str = "english") -> None:
        self.language = language
        self.terms: frozenset[int] = frozenset(_bm25(language).query(text).indices) if text else frozenset()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def of(self, text: str) -> frozenset[int]:
        """The query terms ``text`` holds."""
        if not self.terms or not text.strip():
            return frozenset()
        return self.terms & frozenset(_bm25(self.language).query(text).indices)

    def share(self, text: str) -> float:
        """The fraction of the query's terms that ``text`` holds (0..1)."""
        return len(self.of(text)) / len(self.terms) if self.terms else 0.0

    def matching_words(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of each word of ``text`` that holds a query term."""
        for match in WORD.finditer(text):
            if self.of(match.group()):
                yield match.start(), match.end()
