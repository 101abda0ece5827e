"""``MultimodalReranker``: a LlamaIndex node postprocessor that reranks mixed text and image nodes.

Flow: resolve the query and each node to what it carries (text, image, both) -> route each node
to the first scorer that reads that pair -> decode every needed image in parallel -> score each
scorer's pairs in batches -> order (one scorer: by its scores; several: RRF of their rankings)
-> top_n. Nodes come back as new ``RerankedNode`` objects wrapping the caller's node objects,
which are never modified; the retrieval score is kept on ``RerankedNode.retrieval_score``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, cast

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..docs import document_parameters
from ..errors import (
    ImageLoadError,
    ItemFailure,
    SkippedItemsWarning,
    UnscoredNodesWarning,
    UnsupportedModalityError,
    check_on_error,
    refuse_unknown,
)
from ..fetch import DEPRECATED_FIELDS, FETCH_KEYWORDS, FLAT_FIELDS, FetchOptions, FlatFetchFields, with_fetch_policy
from ..inputs import Parts
from ..multivector import node_multivector
from ..text_limits import paired_limit
from ..types import Backend, OnError, OnUnsupported, Precision
from .routing import Route, content, find_route, load_images, load_media, node_side, query_side, text_limit
from .fusion import DEFAULT_RRF_K, keep_in_place, rank_by_score, reciprocal_rank_fusion
from .scorers.base import MultivectorScorer, Scorer, abilities_of
from .loading import LoadOptions, ModelSpec, load_scorer

dispatcher = get_dispatcher(__name__)

ON_UNSUPPORTED_VALUES = ("raise", "keep")  # the values of types.OnUnsupported



_SCORER_HINTS = {
    ("text", "image"): "add an image-text scorer such as BLIP (Salesforce/blip-itm-base-coco) to rerank them",
    ("text", "text+image"): "add an image-text scorer such as BLIP, or a VLM reranker, to rerank them",
    ("text", "text"): "add a text cross-encoder such as cross-encoder/ms-marco-MiniLM-L-6-v2 to rerank them",
    ("image", "text"): "add an image-text scorer such as BLIP to rerank them",
    ("image", "image"): "add a VLM reranker such as Qwen/Qwen3-VL-Reranker-2B to rerank them",
}


class RerankedNode(NodeWithScore):
    """A reranked node. ``score`` is the reranker's score (see ``MultimodalReranker``); the rest
    says where it came from. ``node`` is the caller's node object itself, unchanged."""

    retrieval_score: Optional[float] = Field(default=None, description="The score the node arrived with.")
    retrieval_rank: int = Field(description="The node's position (from 0) in the list given to the reranker.")
    model_score: Optional[float] = Field(default=None, description="The scoring model's own score for the pair.")
    scorer: Optional[str] = Field(default=None, description="Name of the scorer that scored the node, if any.")
    skipped_reason: Optional[str] = Field(default=None, description="Why the node was not scored, if it was not.")

    @classmethod
    def class_name(cls) -> str:
        return "RerankedNode"


@document_parameters(trust_remote_code="Run model code from the hub (only for models you trust).", model_kwargs="Passed to the models' from_pretrained.", processor_kwargs="Passed to the models' processors.", **FETCH_KEYWORDS)
class MultimodalReranker(FlatFetchFields, BaseNodePostprocessor):
    """Reranks text, image and text+image nodes against a text or image query with cross-encoders.

    ``model_name`` is one model or a list: a hub id or directory (the scorer is chosen from the
    checkpoint's config), a ``CrossEncoder``, a ``BlipForImageTextRetrieval`` or a ``Scorer``.
    Each node goes to the first model that reads its (query, node) modalities.

    Scores: with one scorer, ``score`` is that model's own score (``CrossEncoder.predict``'s scale,
    or BLIP's ITM match probability). When several scorers were used, their scales don't compare,
    so ``score`` is the reciprocal-rank-fusion score of the per-scorer rankings (``rrf_k``) and
    ``model_score`` keeps each model's own score. ``retrieval_score`` keeps the incoming score.

    ``on_unsupported="keep"`` (the default) leaves a node no scorer reads at its retrieval position,
    unscored, and warns once per reranker naming what is missing: whether a retriever returns an
    image depends on the query, so a pipeline must not crash on the first query that returns one.
    ``"raise"`` raises ``UnsupportedModalityError`` instead. ``on_error="skip"`` puts a node whose image
    can't be loaded at the bottom (unscored) and reports it with a ``SkippedItemsWarning``,
    instead of raising its ``ImageLoadError``.
    """

    model_name: str = Field(description="The scoring model(s), comma-separated when several.")
    top_n: int = Field(default=5, ge=1, description="How many nodes to return.")
    batch_size: int = Field(default=32, ge=1, description="Pairs per forward pass.")
    precision: Precision = Field(
        default="auto", description="auto (bf16 where native), fp32, bf16, fp16, or int8 (ONNX Runtime, lossy, opt-in)."
    )
    backend: Backend = Field(
        default="auto", description="auto: the fastest exact path measured on this CPU (torch on a GPU); torch; or onnx "
        "(ONNX Runtime, extra [onnx]) for text cross-encoders and BLIP; other scorers run on torch.",
    )
    device: Optional[str] = Field(default=None, description="Device for models loaded by name; None picks one.")
    instruction: Optional[str] = Field(
        default=None, description="Task instruction for chat-template (VLM) rerankers; other models don't get it."
    )
    on_error: OnError = Field(default="raise", description="Unloadable images: raise or skip.")
    on_unsupported: OnUnsupported = Field(
        default="keep", description="Nodes no scorer reads: keep them at their retrieval rank (warned once), or raise."
    )
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=0, description="RRF constant when several scorers are used.")
    decode_workers: Optional[int] = Field(default=None, description="Image decoding threads; None: one per core.")
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="URL policy and download limits for candidates' image and media URLs (fetch.FetchOptions): "
                    "allow_urls, allow_private_urls, timeout, max_bytes.",
    )

    _scorers: List[Scorer] = PrivateAttr()
    _warned_unscored: set = PrivateAttr(default_factory=set)
    _init_args: Optional[Dict[str, Any]] = PrivateAttr(default=None)

    def __init__(
        self,
        model_name: ModelSpec | Sequence[ModelSpec],
        top_n: int = 5,
        batch_size: int = 32,
        precision: Precision = "auto",
        device: Optional[str] = None,
        instruction: Optional[str] = None,
        on_error: OnError = "raise",
        on_unsupported: OnUnsupported = "keep",
        rrf_k: int = DEFAULT_RRF_K,
        decode_workers: Optional[int] = None,
        trust_remote_code: bool = False,
        model_kwargs: Optional[Dict[str, Any]] = None,
        processor_kwargs: Optional[Dict[str, Any]] = None,
        backend: Backend = "auto",
        **kwargs: Any,
    ) -> None:
        refuse_unknown(type(self).__name__, kwargs,
                       {*type(self).model_fields, "trust_remote_code", "model_kwargs", "processor_kwargs",
                        *FLAT_FIELDS, *DEPRECATED_FIELDS})
        kwargs = with_fetch_policy(type(self).__name__, kwargs)
        check_on_error(on_error)
        if on_unsupported not in ON_UNSUPPORTED_VALUES:
            raise ValueError(f"on_unsupported must be one of {ON_UNSUPPORTED_VALUES}, got {on_unsupported!r}")
        specs = list(model_name) if isinstance(model_name, (list, tuple)) else [model_name]
        if not specs:
            raise ValueError("model_name needs at least one model")
        options = LoadOptions(
            device=device, precision=precision, backend=backend, instruction=instruction, trust_remote_code=trust_remote_code,
            model_kwargs=dict(model_kwargs or {}), processor_kwargs=dict(processor_kwargs or {}),
        )
        options.check()
        scorers = [load_scorer(spec, options) for spec in specs]
        if instruction is not None and not any(abilities_of(s).instruction == instruction for s in scorers):
            raise ValueError("instruction is for chat-template rerankers (VLMs), and none of the models takes one")
        super().__init__(
            model_name=", ".join(scorer.name for scorer in scorers), top_n=top_n, batch_size=batch_size,
            precision=precision, device=device, instruction=instruction, on_error=on_error,
            on_unsupported=on_unsupported, rrf_k=rrf_k, decode_workers=decode_workers, backend=backend, **kwargs,
        )
        self._scorers = scorers
        # What pickling sends instead of the loaded models; None when a model came as an object.
        by_name = all(isinstance(spec, (str, Path)) for spec in specs)
        self._init_args = None if not by_name else {
            "model_name": specs, "top_n": top_n, "batch_size": batch_size, "precision": precision,
            "device": device, "instruction": instruction, "on_error": on_error, "on_unsupported": on_unsupported,
            "rrf_k": rrf_k, "decode_workers": decode_workers, "trust_remote_code": trust_remote_code,
            "model_kwargs": model_kwargs, "processor_kwargs": processor_kwargs, "backend": backend, **kwargs,
        }

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the configuration, never the loaded models: the receiving process loads its own."""
        if self._init_args is None:
            raise TypeError(
                "a MultimodalReranker built from model objects can't be pickled: pass model ids or saved "
                "directories, so each process loads its own copy"
            )
        return _rebuild, (type(self), dict(self._init_args))

    @classmethod
    def class_name(cls) -> str:
        return "MultimodalReranker"

    def describe(self) -> List[Dict[str, Any]]:
        """Per scorer, in routing order: its name and the path its forward pass takes, and why."""
        found = []
        for scorer in self._scorers:
            report = abilities_of(scorer).report
            found.append({"scorer": scorer.name, **(report.to_dict() if report is not None else
                                                    {"backend": "torch", "reason": "a Scorer given as an object"})})
        return found

    @property
    def scorers(self) -> tuple[Scorer, ...]:
        """The scorers, in routing order."""
        return tuple(self._scorers)

    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("MultimodalReranker needs a query: pass query_bundle or query_str")
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model_name)
        )
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model_name,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            reranked = self._rerank(nodes, query_bundle)
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _rerank(self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle) -> List[NodeWithScore]:
        if not nodes:
            return []
        query = query_side(query_bundle)
        routes, unsupported, failures = self._plan(query, nodes)
        if failures and self.on_error == "raise":
            raise failures[min(failures)]
        fetch = self.fetch
        stored = self._stored_multivectors(routes, nodes)
        to_load = [route for route in routes if route.position not in stored]
        images, load_failures = load_images(to_load, self._scorers, self.decode_workers, fetch)
        failures.update(load_failures)
        media, media_failures = load_media([r for r in routes if r.position not in failures], self._scorers, fetch,
                                           self.decode_workers)
        failures.update(media_failures)
        if failures and self.on_error == "raise":
            raise failures[min(failures)]
        routes = [route for route in routes if route.position not in failures]

        model_scores = self._score(routes, images, media, stored)
        used = sorted({route.scorer for route in routes})
        by_scorer = [{r.position: model_scores[r.position] for r in routes if r.scorer == s} for s in used]
        if len(used) == 1:
            final = dict(by_scorer[0])
        else:
            final = reciprocal_rank_fusion([rank_by_score(group) for group in by_scorer], self.rrf_k)
        order = keep_in_place(rank_by_score(final), unsupported) + sorted(failures)

        if failures:
            report = [ItemFailure(p, failures[p].item, failures[p]) for p in sorted(failures)]
            warnings.warn(SkippedItemsWarning("MultimodalReranker", report), stacklevel=4)
        scorer_of = {route.position: self._scorers[route.scorer].name for route in routes}
        reasons = {p: "no scorer reads this (query, node) pair" for p in unsupported}
        reasons.update({p: str(error) for p, error in failures.items()})
        return [
            RerankedNode(
                node=nodes[p].node, score=final.get(p), retrieval_score=nodes[p].score, retrieval_rank=p,
                model_score=model_scores.get(p), scorer=scorer_of.get(p), skipped_reason=reasons.get(p),
            )
            for p in order[: self.top_n]
        ]

    def _plan(
        self, query: Parts, nodes: Sequence[NodeWithScore]
    ) -> tuple[list[Route], list[int], dict[int, ImageLoadError]]:
        """Route every node; collect the ones no scorer reads and the ones whose image is unusable."""
        routes: list[Route] = []
        unsupported: list[int] = []
        failures: dict[int, ImageLoadError] = {}
        for position, item in enumerate(nodes):
            try:
                document = node_side(item.node)
            except ImageLoadError as error:
                failures[position] = error
                continue
            route = find_route(position, query, document, self._scorers)
            if route is None:
                unsupported.append(position)
            else:
                routes.append(route)
        if unsupported and self.on_unsupported == "keep":
            self._warn_unscored(query, [node_side(nodes[p].node) for p in unsupported])
        if unsupported and self.on_unsupported == "raise":
            described = ", ".join(
                f"#{p} node {nodes[p].node.node_id} ({node_side(nodes[p].node).modality})" for p in unsupported[:5]
            )
            readable = "; ".join(f"{s.name}: {sorted(s.pairs)}" for s in self._scorers)
            raise UnsupportedModalityError(
                f"no scorer reads a {query.modality} query against {described}"
                f"{' and more' if len(unsupported) > 5 else ''}. Scorers read (query, node) pairs: {readable}. "
                "Add a scorer for them, or pass on_unsupported='keep' to leave them at their retrieval rank."
            )
        return routes, unsupported, failures

    def _warn_unscored(self, query: Parts, sides: Sequence[Parts]) -> None:
        """One warning per (query modality, node modality) a reranker meets unscored, naming the fix."""
        for modality in sorted({side.modality for side in sides} - self._warned_unscored):
            self._warned_unscored.add(modality)
            hint = _SCORER_HINTS.get((query.modality, modality), "add a scorer that reads them")
            warnings.warn(UnscoredNodesWarning(
                f"{modality} nodes are kept at their retrieval rank: no scorer reads a {query.modality} query "
                f"against them ({hint})"), stacklevel=5)

    def _stored_multivectors(self, routes: Sequence[Route], nodes: Sequence[NodeWithScore]) -> dict[int, Any]:
        """Candidates a MaxSim scorer can score from the multivector they carry (results of a
        late-interaction store), by position: a text query and rows of the scorer's size. Those
        pages are neither decoded nor encoded again."""
        found: dict[int, Any] = {}
        for route in routes:
            scorer = self._scorers[route.scorer]
            width = abilities_of(scorer).multivector_dim
            if width is None or route.query.modality != "text":
                continue
            matrix = node_multivector(nodes[route.position].node)
            if matrix is not None and matrix.ndim == 2 and matrix.shape[1] == width:
                found[route.position] = matrix
        return found

    def _score(self, routes: Sequence[Route], images: dict[tuple[int, int], Any],
               media: Optional[dict[int, dict]] = None, stored: Optional[dict[int, Any]] = None) -> dict[int, float]:
        """Model scores by position: one ``score`` call per (scorer, query view, stored or not) group."""
        stored = stored or {}
        groups: dict[tuple[int, str, bool], list[Route]] = {}
        for route in routes:
            groups.setdefault((route.scorer, route.query.modality, route.position in stored), []).append(route)
        scores: dict[int, float] = {}
        for (scorer_index, _, from_store), group in groups.items():
            scorer = self._scorers[scorer_index]
            chars = text_limit(scorer)
            query = content(group[0].query, images.get((group[0].position, 0)), text_chars=chars)
            if from_store:
                values = cast(MultivectorScorer, scorer).score_multivectors(query, [stored[route.position] for route in group])
                scores.update({route.position: value for route, value in zip(group, values, strict=True)})
                continue
            query_text = group[0].query.text
            documents = [content(route.document, images.get((route.position, 1)), (media or {}).get(route.position),
                                 text_chars=paired_limit(route.document.text or "", query_text, chars))
                         for route in group]
            values = scorer.score(query, documents, self.batch_size)
            scores.update({route.position: value for route, value in zip(group, values, strict=True)})
        return scores


def _rebuild(cls: type, init_args: Dict[str, Any]) -> Any:
    """Unpickling: construct anew from the pickled configuration (loads the models here)."""
    return cls(**init_args)
