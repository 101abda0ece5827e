"""``RemoteMultimodalEmbedding``: a LlamaIndex ``MultiModalEmbedding`` whose model runs on a server.

For app servers without a GPU (or without torch): the same inputs as ``MultimodalEmbedding`` (texts,
image paths, URLs, bytes, PIL images, arrays, audio and video, LlamaIndex nodes, read by the library's
own rules in ``inputs.py``), sent to ``POST /embeddings`` in OpenAI's shape with Infinity's ``modality``:
``mmst serve`` or an Infinity server. Items are grouped by modality and sent ``embed_batch_size`` at a
time; vectors come back base64-encoded (float32, exact). A 429 or 503 is retried after ``Retry-After``;
an item the server refuses becomes that item's own error (``ImageLoadError``, ...), and with
``on_error="skip"`` the others still go through, as in-process.
"""

from __future__ import annotations

import asyncio
import base64
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Generator, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode

from ..errors import (
    EncodeError, ImageLoadError, ItemError, ItemFailure, MediaLoadError, SkippedItemsWarning, UnsupportedModalityError,
    check_on_error,
)
from ..inputs import INPUT_READERS, Parts, read_node
from ..types import Embedding, EmbeddingResult, Modality, OnError, Role
from .http import Endpoint, RejectedItem, RetryPolicy
from .wire import parts_value

CAPABILITY_MODALITIES = {"embed": "text", "image_embed": "image", "audio_embed": "audio"}
"""Infinity's ``/models`` capabilities, as modalities (``mmst serve`` lists its modalities itself)."""


@dataclass(frozen=True)
class _Post:
    body: Dict[str, Any]


@dataclass(frozen=True)
class _Item:
    """One input on its way: its position, modality, label for errors, and wire value (or its error)."""

    position: int
    modality: str
    label: str
    value: Union[str, ItemError]


class RemoteMultimodalEmbedding(MultiModalEmbedding):
    """Embeddings from a server (``mmst serve``, or Infinity) at ``base_url``, e.g. ``http://gpu-box:7997``.

    ``model_name`` is sent as ``model`` (None: the server's first embedding model, from ``/models``).
    ``embed_batch_size`` items go in one request (Infinity takes at most 32 media items).
    """

    base_url: str = Field(description="The server, e.g. http://gpu-box:7997 (or .../v1).")
    api_key: Optional[str] = Field(default=None, exclude=True, repr=False,
                                   description="Sent as 'Authorization: Bearer KEY'; never serialised.")
    model_name: Optional[str] = Field(default=None, description="The model to ask for; None: the server's first.")
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Items per request.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(default=5, ge=0, description="Retries of a 429, a 503 or a refused connection.")
    max_retry_wait: float = Field(default=30.0, gt=0, description="Longest wait before a retry, whatever Retry-After says.")
    dimensions: Optional[int] = Field(default=None, gt=0, description="Ask for vectors cut to this many dimensions.")
    send_input_type: bool = Field(
        default=True, description="Send input_type query/document (mmst serve applies the model's query prompt; "
                                  "servers that don't know it ignore it).")
    headers: Dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")

    _endpoint: Endpoint = PrivateAttr()
    _info: Optional[Dict[str, Any]] = PrivateAttr(default=None)

    def __init__(self, base_url: str, api_key: Optional[str] = None, model_name: Optional[str] = None,
                 **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"unknown arguments {unknown}; valid: {sorted(type(self).model_fields)}")
        super().__init__(base_url=base_url, api_key=api_key, model_name=model_name, **kwargs)
        self._endpoint = Endpoint(self.base_url, self.api_key, self.timeout,
                                  RetryPolicy(self.max_retries, max_retry_wait_s=self.max_retry_wait), self.headers)

    @classmethod
    def class_name(cls) -> str:
        return "RemoteMultimodalEmbedding"

    # ---- what the server serves

    def _model_info(self) -> Dict[str, Any]:
        """The server's entry for our model in ``/models`` (fetched once)."""
        if self._info is None:
            listing = self._endpoint.request("GET", "/models")
            entries = [e for e in listing.get("data", []) if isinstance(e, dict)]
            embedding = [e for e in entries if (e.get("capabilities") or {}) and _kind(e) == "embedding"]
            chosen = next((e for e in entries if e.get("id") == self.model_name), None) or (embedding or entries or [{}])[0]
            self._info = chosen
        return self._info

    @property
    def served_model(self) -> str:
        return self.model_name or str(self._model_info().get("id", ""))

    @property
    def dimension(self) -> int:
        """Length of the vectors (from the server's ``/models``, else from one embedded probe)."""
        capabilities = self._model_info().get("capabilities")
        if isinstance(capabilities, dict) and isinstance(capabilities.get("dimension"), int):
            return self.dimensions or int(capabilities["dimension"])
        return len(self._get_text_embedding("dimension probe"))

    @property
    def late_interaction(self) -> bool:
        """Whether the server's model is a late-interaction retriever (``mmst serve`` says so in ``/models``;
        a server that does not say is taken as a single-vector one)."""
        capabilities = self._model_info().get("capabilities")
        return isinstance(capabilities, dict) and capabilities.get("late_interaction") is True

    def supports(self, modality: Modality) -> bool:
        """Whether the server's model reads this modality (text+image pairs are not sent remotely)."""
        capabilities = self._model_info().get("capabilities")
        if isinstance(capabilities, dict):
            return modality in capabilities.get("modalities", ())
        if isinstance(capabilities, list):
            return modality in {CAPABILITY_MODALITIES.get(c) for c in capabilities}
        return modality == "text"

    # ---- the general method

    def embed(self, inputs: Sequence[Any], modality: Optional[Modality] = None, *, role: Role = "document",
              on_error: OnError = "raise") -> EmbeddingResult:
        """As ``MultimodalEmbedding.embed``: inputs of one ``modality`` (or nodes of any, when None), vectors
        in input order; with ``on_error="skip"`` the bad items are ``None`` and listed in ``failures``."""
        items = self._prepare(inputs, modality, role, on_error)
        return _drive(self._steps(items, role, on_error), self._endpoint)

    async def aembed(self, inputs: Sequence[Any], modality: Optional[Modality] = None, *, role: Role = "document",
                     on_error: OnError = "raise") -> EmbeddingResult:
        items = await asyncio.to_thread(self._prepare, inputs, modality, role, on_error)
        return await _adrive(self._steps(items, role, on_error), self._endpoint)

    def embed_parts(self, parts: Sequence[Parts], *, role: Role = "document", on_error: OnError = "raise") -> EmbeddingResult:
        """Items already read into ``Parts`` (the ingestion path)."""
        items = [_item(p, position) for position, p in enumerate(parts)]
        return _drive(self._steps(items, role, on_error), self._endpoint)

    def _prepare(self, inputs: Sequence[Any], modality: Optional[Modality], role: Role, on_error: OnError) -> List[_Item]:
        check_on_error(on_error)
        if role not in ("query", "document"):
            raise ValueError(f"role must be 'query' or 'document', got {role!r}")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise TypeError(f"inputs must be a list, got {type(inputs).__name__}")
        if modality is not None and modality not in INPUT_READERS:
            raise ValueError(f"modality must be one of {list(INPUT_READERS)} or None, got {modality!r}")
        if modality == "text+image":
            raise UnsupportedModalityError("text+image pairs are not sent to a server; embed the text and the image")
        return [_item(INPUT_READERS[modality](item, position) if modality else read_node(item).parts(), position)
                for position, item in enumerate(inputs)]

    def _steps(self, items: List[_Item], role: Role, on_error: OnError) -> Generator[_Post, Any, EmbeddingResult]:
        """The requests of one ``embed``, written once for the sync and async drivers: one per
        ``embed_batch_size`` items of a modality; an item the server refuses is taken out and the rest re-sent."""
        outcomes: List[Union[Embedding, ItemError, None]] = [
            item.value if isinstance(item.value, ItemError) else None for item in items]
        groups: Dict[str, List[_Item]] = {}
        for item in items:
            if not isinstance(item.value, ItemError):
                groups.setdefault(item.modality, []).append(item)
        for modality, group in groups.items():
            for start in range(0, len(group), self.embed_batch_size):
                pending = group[start: start + self.embed_batch_size]
                while pending:
                    try:
                        answer = yield _Post(self._body(pending, modality, role))
                    except RejectedItem as rejected:
                        item = pending.pop(rejected.index)
                        outcomes[item.position] = _item_error(item, rejected.reason)
                        if on_error == "raise":
                            raise outcomes[item.position] from None  # type: ignore[misc]
                        continue
                    for item, vector in zip(pending, _vectors(answer, len(pending)), strict=True):
                        outcomes[item.position] = vector
                    pending = []
        failures = [ItemFailure(i, o.item, o) for i, o in enumerate(outcomes) if isinstance(o, ItemError)]
        if failures and on_error == "raise":
            raise failures[0].error
        return EmbeddingResult([None if isinstance(o, ItemError) else o for o in outcomes], failures)  # type: ignore[misc]

    def _body(self, items: List[_Item], modality: str, role: Role) -> Dict[str, Any]:
        body: Dict[str, Any] = {"input": [item.value for item in items], "model": self.served_model,
                                "encoding_format": "base64"}
        if modality != "text":
            body["modality"] = modality
        if self.send_input_type:
            body["input_type"] = role
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body

    def _strict(self, inputs: Sequence[Any], modality: Modality, role: Role) -> List[Embedding]:
        return self.embed(inputs, modality, role=role).embeddings  # type: ignore[return-value]

    async def _astrict(self, inputs: Sequence[Any], modality: Modality, role: Role) -> List[Embedding]:
        return (await self.aembed(inputs, modality, role=role)).embeddings  # type: ignore[return-value]

    # ---- LlamaIndex's text and image API

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._strict([query], "text", "query")[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._strict([text], "text", "document")[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return self._strict(texts, "text", "document")

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._astrict([query], "text", "query"))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._astrict([text], "text", "document"))[0]

    async def _aget_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return await self._astrict(texts, "text", "document")

    def _get_image_embedding(self, img_file_path: Any) -> Embedding:
        return self._strict([img_file_path], "image", "document")[0]

    async def _aget_image_embedding(self, img_file_path: Any) -> Embedding:
        return (await self._astrict([img_file_path], "image", "document"))[0]

    def _get_image_embeddings(self, img_file_paths: List[Any]) -> List[Embedding]:
        return self._strict(img_file_paths, "image", "document")

    async def _aget_image_embeddings(self, img_file_paths: List[Any]) -> List[Embedding]:
        return await self._astrict(img_file_paths, "image", "document")

    def get_image_query_embedding(self, image: Any) -> Embedding:
        """Embed an image as a query (the model's query prompt), for image-to-anything search."""
        return self._strict([image], "image", "query")[0]

    async def aget_image_query_embedding(self, image: Any) -> Embedding:
        return (await self._astrict([image], "image", "query"))[0]

    # ---- ingestion transformation

    def __call__(self, nodes: Sequence[BaseNode], show_progress: bool = False, on_error: OnError = "raise",
                 **kwargs: Any) -> Sequence[BaseNode]:
        """Set each node's vectors as ``MultimodalEmbedding`` does: ``embedding`` from its pixels (or its
        text, or its audio or video), and ``text_embedding`` from the words of a node that has both."""
        check_on_error(on_error)
        if self.late_interaction:
            raise ValueError(
                f"the server's model {self.served_model!r} is a late-interaction retriever: its nodes need their "
                "token multivectors, which /embeddings does not return; embed the nodes with MultimodalEmbedding "
                "in process")
        read = [read_node(node) for node in nodes]
        # Which field gets which vector is the in-process rule (``NodeParts.field_inputs``); pairs are
        # not fused remotely (a text+image item is not sent).
        wanted = [parts.field_inputs() for parts in read]
        texts = {position: fields["text_embedding"] for position, fields in enumerate(wanted)
                 if "text_embedding" in fields}
        result = self.embed_parts([fields["embedding"] for fields in wanted] + list(texts.values()), on_error=on_error)
        text_slot = {position: len(read) + k for k, position in enumerate(texts)}
        errors = {failure.position: failure.error for failure in result.failures}
        kept, failures = [], []
        for position, parts in enumerate(read):
            error = errors.get(position) or errors.get(text_slot.get(position, -1))
            if error is not None:
                failures.append(ItemFailure(position, f"node {parts.node_id} ({getattr(error, 'item', '')})", error))
                continue
            parts.node.embedding = list(result.embeddings[position])  # type: ignore[arg-type]
            if position in text_slot:
                parts.node.text_embedding = result.embeddings[text_slot[position]]  # type: ignore[attr-defined]
            kept.append(parts.node)
        if failures:
            warnings.warn(SkippedItemsWarning("embedding nodes", failures), stacklevel=2)
        return kept

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return await asyncio.to_thread(lambda: self.__call__(nodes, **kwargs))

    def close(self) -> None:
        self._endpoint.close()


def _kind(entry: Dict[str, Any]) -> str:
    capabilities = entry.get("capabilities")
    if isinstance(capabilities, dict):
        return str(capabilities.get("kind", ""))
    return "embedding" if "embed" in (capabilities or ()) else ""


def _item(parts: Union[Parts, Exception], position: int) -> _Item:
    """One input's wire value, or the error reading it (an unreadable file fails here, as in-process)."""
    modality = parts.modality
    label = (parts.media.label if parts.media is not None else parts.image.label if parts.image is not None
             else f"text at position {position}")
    try:
        return _Item(position, modality, label, parts_value(parts))
    except ItemError as exc:
        return _Item(position, modality, label, exc)


def _item_error(item: _Item, reason: str) -> ItemError:
    if item.modality == "image":
        return ImageLoadError(item.label, reason)
    if item.modality in ("audio", "video"):
        return MediaLoadError(item.label, reason)
    return EncodeError(item.label, reason)


def _vectors(answer: Any, count: int) -> List[Embedding]:
    """The ``data`` of an OpenAI-shaped answer in input order, base64 (float32) or float lists."""
    data = sorted(answer.get("data", []), key=lambda entry: entry.get("index", 0))
    if len(data) != count:
        raise ValueError(f"the server returned {len(data)} vectors for {count} inputs")
    vectors = []
    for entry in data:
        value = entry["embedding"]
        if isinstance(value, str):
            value = np.frombuffer(base64.b64decode(value), dtype="<f4").tolist()
        vectors.append([float(x) for x in value])
    return vectors


def _drive(steps: Generator[_Post, Any, EmbeddingResult], endpoint: Endpoint) -> EmbeddingResult:
    try:
        step = next(steps)
        while True:
            try:
                answer = endpoint.request("POST", "/embeddings", step.body)
            except RejectedItem as rejected:
                step = steps.throw(rejected)
                continue
            step = steps.send(answer)
    except StopIteration as done:
        return done.value


async def _adrive(steps: Generator[_Post, Any, EmbeddingResult], endpoint: Endpoint) -> EmbeddingResult:
    try:
        step = next(steps)
        while True:
            try:
                answer = await endpoint.arequest("POST", "/embeddings", step.body)
            except RejectedItem as rejected:
                step = steps.throw(rejected)
                continue
            step = steps.send(answer)
    except StopIteration as done:
        return done.value
