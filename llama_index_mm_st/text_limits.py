"""A text's cost bounded before it is tokenised: one rule for the embedding, the reranker and the server.

A model reads at most its window of tokens, but a tokenizer asked to truncate still tokenises the whole
string first: a 5 MB text costs seconds of CPU before the first ``window`` tokens are kept, and a
reranker tokenises its query once per document. So every text is cut to ``CHARS_PER_TOKEN`` characters
per token of the window before any tokenizer sees it. A token spans a few characters (about 4 in
English for BERT's and CLIP's vocabularies), so the cut keeps several windows' worth of text and the
tokens the model reads are the same as without it. Only a text whose first ``window`` tokens span more
than ``CHARS_PER_TOKEN`` characters each is read differently: one padded with megabytes of whitespace
that BERT-style tokenizers drop, say; the model then reads the start of it, and no more than a window.
A reranker's pair keeps its sides' order of length (``paired_limit``).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

CHARS_PER_TOKEN = 16
"""Characters of text kept per token of the window (about 4x what a token spans in English text)."""
WINDOW_SANITY = 1_000_000
"""A declared window above this is a tokenizer that declares none (``int(1e30)``)."""
UNKNOWN_WINDOW = 32_768
"""The window assumed for a model that declares none: longer than any text tower's, still a bound."""


def declared_window(*holders: Any) -> Optional[int]:
    """The token window the given objects truncate text to, by the first kind of declaration any of them
    makes sanely: a sentence-transformers model or module's ``max_seq_length`` (what it truncates to),
    else a tokenizer's (or a processor's tokenizer's) ``model_max_length``, else a model config's text
    ``max_position_embeddings``; the largest within that kind. None when none declares a sane one."""
    for tier in (_seq_lengths, _tokenizer_lengths, _positions):
        sane = [int(value) for holder in holders if holder is not None for value in tier(holder)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < WINDOW_SANITY]
        if sane:
            return max(sane)
    return None


def char_limit(window: Optional[int]) -> int:
    """The characters of a text a model with this token window is given."""
    return (window or UNKNOWN_WINDOW) * CHARS_PER_TOKEN


def bound_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (``char_limit``), before any tokenizer sees it."""
    return text if len(text) <= limit else text[:limit]


def paired_limit(text: str, other: Optional[str], limit: int) -> int:
    """The characters kept of a document read in a pair with a query (a cross-encoder's input), when the
    query is cut to ``limit``. A pair too long for the window loses tokens from its longer side first
    (``longest_first``), and when both sides are long the longer one keeps the odd token: so the longer
    side keeps twice ``limit`` and the shorter, if the query is cut, half of it. Each side still holds
    more tokens than it can keep, and which side is longer stays as it was (unless the two are within a
    factor of about 2 and tokenise at different rates, when the split may move by one token)."""
    other_length = len(other or "")
    if len(text) >= other_length:
        return 2 * limit
    return limit // 2 if other_length > limit else limit


def _seq_lengths(holder: Any) -> Iterable[Any]:
    yield _attribute(holder, "max_seq_length")


def _tokenizer_lengths(holder: Any) -> Iterable[Any]:
    yield _attribute(holder, "model_max_length")
    tokenizer = _attribute(holder, "tokenizer") or _attribute(_attribute(holder, "processor"), "tokenizer")
    yield _attribute(tokenizer, "model_max_length")


def _positions(holder: Any) -> Iterable[Any]:
    config = _attribute(holder, "config")
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        yield _attribute(text_config, "max_position_embeddings")


def _attribute(holder: Any, name: str) -> Any:
    """``getattr`` that treats a property raising (a model without that part) as absent."""
    if holder is None:
        return None
    try:
        return getattr(holder, name, None)
    except (AttributeError, RuntimeError, ValueError, TypeError):
        return None
