"""Passages of a text hit: the sentences that matched, by words and by meaning.

The node's text is cut into sentences (at ``.``, ``!``, ``?`` or a line break; a sentence over
``MAX_UNIT_CHARS`` is cut at word boundaries). Each is scored twice:

- **words**: how many of the query's ``n`` BM25 terms it holds, ``k`` (``words.QueryTerms``, the
  store's rule);
- **meaning**: its embedding's cosine to the query vector, rescaled to 0..1 within the hit (the best
  sentence 1, the worst 0), ``m``.

A passage's score is ``(k + m / 2) / (n + 1 / 2)``, in 0..1: a sentence holding more of the query's
words always outranks one holding fewer (exact words are what the user typed), and meaning orders
sentences with as many words, and finds the passage when no word matches (a paraphrase, an image
query: then the score is ``m``). Meaning is computed only where it decides: among the sentences
holding the most query words when several do, or for every sentence when none holds any (elsewhere
``m`` counts 0); a chunk whose best sentence is the only one with the most words costs no model call.
Passages scoring at least half the best are kept, best first. A chunk of many sentences is scored in groups of adjacent
sentences (at most ``MAX_UNITS`` embeddings per hit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generator, Optional, Sequence

import numpy as np

from .crops import cosine
from .words import QueryTerms

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n\s*")
MAX_UNIT_CHARS = 400
MAX_UNITS = 24
KEEP_FRACTION = 0.5


@dataclass(frozen=True)
class PassageSettings:
    keep: int = 3
    """Most passages reported per hit."""
    max_units: int = MAX_UNITS
    """Most sentences (or groups of them) embedded per hit."""


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, whitespace trimmed; long ones cut at word boundaries."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        spans.extend(_cut(text, start, match.start()))
        start = match.end()
    spans.extend(_cut(text, start, len(text)))
    return spans


def _cut(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    pieces = []
    while end - start > MAX_UNIT_CHARS:
        cut = text.rfind(" ", start, start + MAX_UNIT_CHARS)
        cut = cut if cut > start else start + MAX_UNIT_CHARS
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def group(units: Sequence[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """At most ``most`` spans: adjacent units joined in equal runs when there are more."""
    if len(units) <= most:
        return list(units)
    size = -(-len(units) // most)
    return [(units[i][0], units[min(i + size, len(units)) - 1][1]) for i in range(0, len(units), size)]


PassageSearch = Generator[list[str], np.ndarray, list[tuple[int, int, float]]]
"""Yields the texts to embed (once), is sent their vectors; returns (start, end, score), best first."""


def search_passages(text: str, query: Optional[np.ndarray], terms: QueryTerms,
                    settings: PassageSettings = PassageSettings()) -> PassageSearch:
    """The passages of ``text`` that match the query, as the module describes. ``query`` is the query
    vector (None: by words only); ``terms`` the query's words."""
    units = group(sentences(text), settings.max_units)
    if not units:
        return []
    words = np.array([len(terms.of(text[a:b])) for a, b in units], dtype=np.float64)
    deciding = [i for i in range(len(units)) if words[i] == words.max()]
    meaning = np.zeros(len(units))
    if query is not None and len(deciding) > 1:
        values = cosine((yield [text[units[i][0]:units[i][1]] for i in deciding]), query)
        low, high = float(values.min()), float(values.max())
        meaning[deciding] = (values - low) / (high - low) if high > low else 1.0
    elif query is not None or words.max() > 0:
        meaning[deciding] = 1.0  # one sentence decides alone
    scores = (words + meaning / 2) / (len(terms.terms) + 0.5)
    best = float(scores.max())
    if best <= 0:
        return []
    order = sorted(range(len(units)), key=lambda i: (-scores[i], i))
    kept = [i for i in order if scores[i] >= KEEP_FRACTION * best][: settings.keep]
    return [(units[i][0], units[i][1], float(scores[i])) for i in kept]
