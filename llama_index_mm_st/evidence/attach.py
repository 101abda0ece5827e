"""Evidence for a search's final results: what the search step (``search.py``) calls when it is asked.

The search has already embedded the query (``QueryBundle.embedding``), so that vector (and a late
model's token vectors, which it carries) is reused; only the localisers' own calls remain. They run
in-process, or through ``run`` (the server's embedding lane), one call per modality per round.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, Optional, Sequence

import numpy as np
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..inputs import read_query
from .locate import EmbedCall, EvidenceQuery, EvidenceSettings, arun_steps, embed_rows, evidence_steps, run_steps
from .nodes import with_evidence

AsyncRun = Callable[[EmbedCall], Awaitable[np.ndarray]]
"""Runs one ``EmbedCall`` elsewhere (the server's lane): rows in input order, NaN rows for failures."""


def settings_for(store: Any, settings: Optional[EvidenceSettings] = None) -> EvidenceSettings:
    """The settings, with the word-matching language of the store's BM25."""
    from dataclasses import replace

    settings = settings or EvidenceSettings()
    language = getattr(store, "bm25_language", None)
    return replace(settings, language=language) if isinstance(language, str) and language else settings


def _steps(nodes: Sequence[NodeWithScore], embedding: Any, bundle: QueryBundle, store: Any,
           settings: Optional[EvidenceSettings]):  # type: ignore[no-untyped-def]
    query = EvidenceQuery(read_query(bundle), vector=bundle.embedding)
    return evidence_steps(nodes, embedding, query, settings_for(store, settings), store)


def attach_evidence(nodes: Sequence[NodeWithScore], embedding: Any, bundle: QueryBundle, store: Any = None,
                    settings: Optional[EvidenceSettings] = None) -> List[NodeWithScore]:
    """Copies of ``nodes`` carrying their evidence (``nodes.EVIDENCE_KEY``), computed now."""
    found = run_steps(_steps(nodes, embedding, bundle, store, settings), lambda call: embed_rows(embedding, call))
    return [with_evidence(item, evidence) for item, evidence in zip(nodes, found)]


async def aattach_evidence(nodes: Sequence[NodeWithScore], embedding: Any, bundle: QueryBundle, store: Any = None,
                           settings: Optional[EvidenceSettings] = None, run: Optional[AsyncRun] = None
                           ) -> List[NodeWithScore]:
    """``attach_evidence`` for async callers; ``run`` runs the model calls (else a worker thread does)."""
    async def in_thread(call: EmbedCall) -> np.ndarray:
        return await asyncio.to_thread(embed_rows, embedding, call)

    found = await arun_steps(_steps(nodes, embedding, bundle, store, settings), run or in_thread)
    return [with_evidence(item, evidence) for item, evidence in zip(nodes, found)]
