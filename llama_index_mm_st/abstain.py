"""Abstention in a query engine: no relevant evidence, no LLM call.

When the retriever returns nothing (``min_relevance`` cut every hit: the index holds nothing relevant
to the question), LlamaIndex would still hand the empty context to its synthesizer. This engine answers
``NO_EVIDENCE`` instead, with ``metadata["abstained"]`` set, and the LLM is never called.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle

NO_EVIDENCE = "no relevant evidence found"


def _abstained() -> Response:
    return Response(NO_EVIDENCE, source_nodes=[], metadata={"abstained": True})


class AbstainingQueryEngine(RetrieverQueryEngine):
    """``RetrieverQueryEngine`` that answers ``NO_EVIDENCE`` when retrieval returns no node."""

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        with self.callback_manager.event(CBEventType.QUERY,
                                         payload={EventPayload.QUERY_STR: query_bundle.query_str}) as event:
            nodes = self.retrieve(query_bundle)
            response: Any = _abstained() if not nodes else self._response_synthesizer.synthesize(
                query=query_bundle, nodes=nodes)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        with self.callback_manager.event(CBEventType.QUERY,
                                         payload={EventPayload.QUERY_STR: query_bundle.query_str}) as event:
            nodes = await self.aretrieve(query_bundle)
            response: Any = _abstained() if not nodes else await self._response_synthesizer.asynthesize(
                query=query_bundle, nodes=nodes)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response
