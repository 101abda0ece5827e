"""``MultimodalEmbedding``: text, images and text+image pairs in one vector space, for LlamaIndex.

The LlamaIndex surface (``get_*_embedding``, ``get_*_embedding_batch``, the transformation
``__call__`` for ingestion pipelines) sits on one general method, ``embed``, which resolves inputs,
groups them by modality, encodes each group through ``Encoder`` and returns vectors in input order.
"""

from __future__ import annotations

import asyncio
import warnings
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.base.embeddings.base import mean_agg
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode
from sentence_transformers import SentenceTransformer

from ..concurrency import DynamicBatcher
from ..docs import document_parameters
from ..errors import ItemError, ItemFailure, SkippedItemsWarning, check_on_error, refuse_unknown
from ..fetch import DEPRECATED_FIELDS, FETCH_KEYWORDS, FLAT_FIELDS, FetchOptions, FlatFetchFields, with_fetch_policy
from ..hub import locate_model
from ..images import DEFAULT_MAX_PIXELS, DecodeOptions, default_workers
from ..inputs import INPUT_READERS, NodeParts, Parts, data_uri_modality, read_node
from ..media import MediaLimits
from ..multivector import PooledVector, attach_multivector, native_checkpoint
from ..onnx.choice import BackendReport, log_choice, plan as backend_plan
from ..onnx.selection import select
from ..runtime import resolve_device, torch_dtype
from ..text_vectors import remember as remember_text_vectors
from ..types import Backend, Embedding, EmbeddingResult, Modality, OnError, Precision, Role
from .encoder import EncodeSettings, Encoder
from .forward import Forward, embedding_kind
from .late import LateEncoder
from .profiles import backbone_config, checkpoint_kind, image_target_size, profile_for

from ..defaults import (
    DEFAULT_MAX_MEDIA_BYTES,
    DEFAULT_MAX_MEDIA_SECONDS,
    DEFAULT_MAX_VIDEO_DECODED_BYTES,
    DEFAULT_MODEL,
)

_INPUT_READERS: Dict[Modality, Callable[[Any, int], Parts]] = INPUT_READERS  # type: ignore[assignment]

Outcome = Union[Embedding, Exception]
"""One item's result in the shared routine: its vector, or the error that stopped it."""


@document_parameters(model="A loaded SentenceTransformer to use instead of loading model_name.", **FETCH_KEYWORDS)
class MultimodalEmbedding(FlatFetchFields, MultiModalEmbedding):
    """Sentence Transformers models (CLIP, SigLIP/SigLIP-2, CLAP, VLM embedders) as a LlamaIndex embedding.

    ``embed(items, "audio")`` and ``embed(items, "video")`` take media (paths, URLs, bytes, nodes, arrays
    with their rate) for models that read them; nodes with ``audio_resource``/``video_resource`` are
    embedded by their media in ``__call__``.

    Strings are text in text methods and image references (path, URL, ``data:`` URI) in image
    methods; nothing is guessed. Queries get the model's query prompt, documents its document prompt.
    ``precision="auto"`` picks bf16 where the hardware runs it natively; ``"fp32"`` is exact.
    Calling the object on nodes (an ingestion transformation) sets ``node.embedding`` from each node's
    modality; an ``ImageNode`` with text also gets ``text_embedding`` from its words.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Model id or local directory.")
    embed_batch_size: int = Field(default=256, gt=0, le=2048, description="Items per LlamaIndex batch call.")
    batch_size: int = Field(default=32, gt=0, description="Items per model forward pass.")
    device: Optional[str] = Field(default=None, description="cuda, mps, cpu; None picks the best available.")
    precision: Precision = Field(
        default="auto", description="auto, fp32, bf16, fp16, or int8 (ONNX Runtime dynamic quantization, lossy, opt-in)."
    )
    backend: Backend = Field(
        default="auto", description="auto: the fastest exact path measured on this CPU (torch on a GPU); torch; "
        "or onnx (ONNX Runtime, extra [onnx]; the graph is exported once and cached).",
    )
    normalize: bool = Field(default=True, description="L2-normalise embeddings.")
    truncate_dim: Optional[int] = Field(default=None, gt=0, description="Matryoshka truncation.")
    query_prompt_name: Optional[str] = Field(default=None, description="Prompt for queries (default: 'query').")
    document_prompt_name: Optional[str] = Field(default=None, description="Prompt for documents (default: 'document').")
    trust_remote_code: bool = Field(default=False, description="Run model code from the hub (only for models you trust).")
    model_kwargs: Dict[str, Any] = Field(default_factory=dict, description="Passed to the model's from_pretrained.")
    processor_kwargs: Dict[str, Any] = Field(default_factory=dict, description="Passed to the processor.")
    max_pixels: Optional[int] = Field(
        default=DEFAULT_MAX_PIXELS, description="Refuse larger images (and video frames) before decoding."
    )
    fast_decode: Optional[bool] = Field(
        default=None, description="Decode JPEGs at reduced DCT scale toward the model's input size. None: on unless fp32."
    )
    decode_workers: Optional[int] = Field(
        default=None, description="Image decoding threads (default: cores - 1, leaving one to the model)."
    )
    bucket_batches: Optional[bool] = Field(
        default=None,
        description="Pad forward passes to a few batch sizes and text lengths so kernel caches stay small (flat memory). "
                    "None: on where torch runs bf16/fp16 (oneDNN keeps a kernel per shape), off in fp32 and int8, "
                    "where memory stays flat without it and padding would only cost compute.",
    )
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="URL policy and download limits for image and media URLs (fetch.FetchOptions): allow_urls, "
                    "allow_private_urls, timeout, max_bytes.",
    )
    max_media_seconds: Optional[float] = Field(
        default=DEFAULT_MAX_MEDIA_SECONDS, gt=0, description="Refuse audio or video longer than this (read from the header first)."
    )
    max_media_bytes: Optional[int] = Field(default=DEFAULT_MAX_MEDIA_BYTES, gt=0, description="Refuse larger audio or video files.")
    max_video_decoded_bytes: Optional[int] = Field(
        default=DEFAULT_MAX_VIDEO_DECODED_BYTES, gt=0,
        description="Refuse a video whose sampled frames would decode to more bytes (RGB), checked from its header.",
    )
    devices: Optional[List[str]] = Field(
        default=None, description="Several devices (e.g. ['cuda:0', 'cuda:1']) spread large groups over processes."
    )
    fuse_text_and_image: bool = Field(
        default=False, description="In __call__, embed an ImageNode with text as one fused text+image input (VLMs)."
    )
    token_pool_factor: Optional[float] = Field(
        default=None, ge=1.0, description="Late-interaction models: keep about 1/factor of each document's "
        "token vectors (sentence-transformers' hierarchical token pooling); None keeps them all.",
    )

    _model: SentenceTransformer = PrivateAttr()
    _encoder: Encoder = PrivateAttr()
    _backend_report: BackendReport = PrivateAttr()
    _batchers: Dict[tuple, DynamicBatcher] = PrivateAttr(default_factory=dict)
    _init_args: Optional[Dict[str, Any]] = PrivateAttr(default=None)

    def __init__(self, model_name: Optional[str] = None, *, model: Optional[Any] = None,
                 **kwargs: Any):
        from sentence_transformers import MultiVectorEncoder

        if model is not None and not isinstance(model, (SentenceTransformer, MultiVectorEncoder)):
            raise TypeError("model must be a sentence_transformers.SentenceTransformer or MultiVectorEncoder, "
                            f"got {type(model).__name__}")
        if model_name is None:
            config = backbone_config(model) if model is not None else None
            model_name = getattr(config, "_name_or_path", None) or ("custom" if model is not None else DEFAULT_MODEL)
        refuse_unknown(type(self).__name__, kwargs,
                       {*type(self).model_fields, "model", *FLAT_FIELDS, *DEPRECATED_FIELDS})
        kwargs = with_fetch_policy(type(self).__name__, kwargs)
        model_name = native_checkpoint(model_name)
        super().__init__(model_name=model_name, **kwargs)
        # What pickling sends instead of the loaded model; None when the model came as an object.
        self._init_args = None if model is not None else {"model_name": model_name, **kwargs}
        device = resolve_device(self.device)
        plan = backend_plan(self.backend, self.precision, device)  # refuses a bad pair before loading anything
        loaded_by_name = model is None
        if model is None:
            # Where the model comes from is settled first: one that is neither local nor cached while the
            # hub can't be reached fails here, in about a second, with one line (hub.locate_model).
            source = locate_model(self.model_name, "MultimodalEmbedding('/path/to/a/local/model')").load_from
            # The checkpoint says what kind of model it is (as the reranker's scorers are chosen): a
            # late-interaction retriever loads as a MultiVectorEncoder, anything else as a SentenceTransformer.
            late = checkpoint_kind(source) == "late_interaction"
            model = (MultiVectorEncoder if late else SentenceTransformer)(
                source, device=device, trust_remote_code=self.trust_remote_code,
                model_kwargs=self.model_kwargs or None, processor_kwargs=self.processor_kwargs or None,
            )
        else:
            model.to(device)
        model.eval()
        if plan.onnx_precision is not None:
            model.to(dtype=torch_dtype("fp32"))  # graphs are exported from (and checked against) fp32 weights
        kind = embedding_kind(model, batch_size=self.batch_size, late_interaction=_is_late(model))
        selection = select(kind, self.model_name if loaded_by_name else None, plan, self.model_kwargs)
        model.to(dtype=torch_dtype(selection.torch_precision))
        precision = selection.report.precision
        self.device, self.precision, self.backend = device, precision, selection.report.backend
        self._model = model
        self._backend_report = selection.report
        self._encoder = self._build_encoder(model, precision, selection.forward)
        log_choice(f"MultimodalEmbedding({self.model_name})", selection.report)

    def _build_encoder(self, model: SentenceTransformer, precision: Precision, forward: Optional[Forward] = None) -> Encoder:
        profile = profile_for(model)
        fast = self.fast_decode if self.fast_decode is not None else precision != "fp32"
        draft = image_target_size(model) if (fast and profile.draft_decode) else None
        settings = EncodeSettings(
            batch_size=self.batch_size, normalize=self.normalize, truncate_dim=self.truncate_dim,
            decode=DecodeOptions(max_pixels=self.max_pixels, draft_size=draft),
            fetch=self.fetch,
            devices=tuple(self.devices) if self.devices else None,
            bucket_batches=self.bucket_batches if self.bucket_batches is not None else precision in ("bf16", "fp16"),
            media=MediaLimits(max_duration_s=self.max_media_seconds, max_bytes=self.max_media_bytes,
                              max_frame_pixels=self.max_pixels, max_decoded_bytes=self.max_video_decoded_bytes),
        )
        workers = self.decode_workers if self.decode_workers is not None else max(1, default_workers() - 1)
        prompts: Dict[Role, Optional[str]] = {"query": self.query_prompt_name, "document": self.document_prompt_name}
        if _is_late(model):
            return LateEncoder(model, profile, settings, prompts, workers, self.token_pool_factor)
        if self.token_pool_factor is not None:
            raise ValueError("token_pool_factor applies to late-interaction models only")
        return Encoder(model, profile, settings, prompts, workers, forward)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle the configuration, never the loaded model: the receiving process (a process pool,
        Ray, Spark) loads its own copy, on its own device, from the name or directory."""
        if self._init_args is None:
            raise TypeError(
                "a MultimodalEmbedding built from a model object can't be pickled: save the model "
                "(model.save(DIR)) and pass MultimodalEmbedding(DIR), so each process loads its own copy"
            )
        return _rebuild, (type(self), dict(self._init_args))

    @classmethod
    def class_name(cls) -> str:
        return "MultimodalEmbedding"

    @property
    def model(self) -> SentenceTransformer:
        """The underlying Sentence Transformers model."""
        return self._model

    def describe(self) -> Dict[str, Any]:
        """What this embedding runs and why: model, device, the forward path (torch or ONNX Runtime, and
        precision), the reason (``backend="auto"``: what it measured), and each exported part's graph."""
        return {"model": self.model_name, "device": self.device, "dimension": self.dimension,
                **self._backend_report.to_dict()}

    @property
    def late_interaction(self) -> bool:
        """Whether the model is a late-interaction retriever: nodes then also carry a multivector
        (``multivector.node_multivector``) and query vectors carry theirs (``PooledVector.multivector``)."""
        return isinstance(self._encoder, LateEncoder)

    @property
    def dimension(self) -> int:
        """Length of every vector this embedding returns."""
        return self._encoder.dimension()

    @property
    def decode_options(self) -> DecodeOptions:
        """How this embedding decodes images (pixel limit, JPEG draft size): a worker that decodes for
        it elsewhere (a Ray read task) uses these, so the model sees the same pixels."""
        return self._encoder.settings.decode

    @property
    def fetch_options(self) -> FetchOptions:
        """This embedding's URL policy and download limits (its ``fetch``)."""
        return self.fetch

    @property
    def max_download_bytes(self) -> int:
        """Deprecated: ``fetch.max_bytes``."""
        return self.fetch.max_bytes

    @property
    def text_window(self) -> Optional[int]:
        """Tokens of a text the model reads (None: it declares no window). Longer texts are truncated, and
        cut to ``text_limits.char_limit(text_window)`` characters before tokenising, so their cost is bounded."""
        return self._encoder.text_window

    def supports(self, modality: Modality) -> bool:
        """Whether the model can encode this modality (text+image needs a VLM embedder)."""
        return self._encoder.supports(modality)

    def close(self) -> None:
        """Stop the image decoding threads now. They also stop when the embedding is garbage collected;
        a later call starts them again, so closing a shared embedding early is safe."""
        self._encoder.close()

    # ---- the one routine -----------------------------------------------------------------------

    def _encode_parts(self, items: Sequence[Union[Parts, Exception]], role: Role, *, stop_on_error: bool,
                      show_progress: bool = False) -> List[Outcome]:
        """Group by modality, encode each group, and put every result back at its item's position.

        Every public path (``embed``, the ingestion ``__call__``, coalesced async calls) ends here, so
        grouping and failure bookkeeping exist once. An item that is already an exception (it could
        not be read) stays one; an image that fails to load becomes its ``ImageLoadError``, or raises
        at once with ``stop_on_error``.
        """
        results: List[Outcome] = [item if isinstance(item, Exception) else _PENDING for item in items]
        groups: Dict[Modality, List[int]] = {}
        for position, item in enumerate(items):
            if isinstance(item, Parts):
                groups.setdefault(item.modality, []).append(position)
        for modality, positions in groups.items():
            output = self._encoder.encode(modality, [items[p] for p in positions], role,  # type: ignore[misc]
                                          stop_on_error=stop_on_error, progress=show_progress)
            failed = {failure.position: failure.error for failure in output.failures}
            multivectors = output.multivectors
            for local, position in enumerate(positions):
                if local in failed:
                    results[position] = failed[local]
                elif multivectors is not None:  # a late-interaction model: the pooled vector knows its tokens
                    results[position] = PooledVector(output.vectors[local].tolist(), multivectors[local])
                else:
                    results[position] = output.vectors[local].tolist()
        return results

    def _read_input(self, item: Any, position: int, modality: Optional[Modality]) -> Parts:
        """One caller input as ``Parts``: by ``modality``, or by what the node carries when it is None."""
        if modality is None:
            return read_node(item).parts(fuse=self._fuses())
        if modality not in _INPUT_READERS:
            raise ValueError(f"modality must be one of {list(_INPUT_READERS)} or None, got {modality!r}")
        return _INPUT_READERS[modality](item, position)

    # ---- the general method -------------------------------------------------------------------

    def embed(self, inputs: Sequence[Any], modality: Optional[Modality] = None, *, role: Role = "document",
              on_error: OnError = "raise", show_progress: bool = False) -> EmbeddingResult:
        """Embed inputs of one ``modality``, or LlamaIndex nodes of any modality when it is None.

        Inputs are grouped by modality, encoded in batches, and returned in input order. With
        ``on_error="skip"`` bad images and media become ``None`` and are listed in ``failures``. A wrong input
        type is always a ``TypeError``: it is a bug in the caller, not bad data.
        """
        check_on_error(on_error)
        if role not in ("query", "document"):
            raise ValueError(f"role must be 'query' or 'document', got {role!r}")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise TypeError(f"inputs must be a list, got {type(inputs).__name__}")
        parts = [self._read_input(item, position, modality) for position, item in enumerate(inputs)]
        outcomes = self._encode_parts(parts, role, stop_on_error=on_error == "raise", show_progress=show_progress)
        return _as_result(outcomes)

    def _embed_strict(self, inputs: Sequence[Any], modality: Modality, role: Role) -> List[Embedding]:
        return self.embed(inputs, modality, role=role).embeddings  # type: ignore[return-value]

    # ---- LlamaIndex text API --------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        """A query string is words, except a ``data:`` image, audio or video URI, which is that example
        (the package's one query rule, ``inputs.read_query``): LlamaIndex's retrievers pass every
        query through here, an HTTP client's image query included."""
        return self._embed_strict([query], data_uri_modality(query) or "text", "query")[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        """LlamaIndex's text path (``VectorStoreIndex`` sends every node's EMBED text here, an image's caption
        or file name included): the vectors are remembered (``text_vectors``), so the store embeds a node
        with pixels properly instead of keeping its words' vector as its image vector."""
        vectors = self._embed_strict(texts, "text", "document")
        remember_text_vectors(vectors, self)
        return vectors

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._submit(data_uri_modality(query) or "text", "query", query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        vector = await self._submit("text", "document", text)
        remember_text_vectors([vector], self)
        return vector

    async def _aget_text_embeddings(self, texts: List[str]) -> List[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def get_agg_embedding_from_queries(self, queries: List[str],
                                       agg_fn: Optional[Callable[..., Embedding]] = None) -> Embedding:
        """LlamaIndex's retrievers embed a query through this. A late-interaction model keeps the
        query's token vectors with the aggregate (see ``_aggregate``), so the store can rank by MaxSim."""
        return _aggregate([self.get_query_embedding(query) for query in queries], agg_fn)

    async def aget_agg_embedding_from_queries(self, queries: List[str],
                                              agg_fn: Optional[Callable[..., Embedding]] = None) -> Embedding:
        return _aggregate([await self.aget_query_embedding(query) for query in queries], agg_fn)

    # ---- LlamaIndex image API -------------------------------------------------------------------

    def _get_image_embedding(self, img_file_path: Any) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embedding(self, img_file_path: Any) -> Embedding:
        vector = await self._submit("image", "document", img_file_path)
        remember_text_vectors([vector], self, "image")
        return vector

    def _get_image_embeddings(self, img_file_paths: List[Any]) -> List[Embedding]:
        vectors = self._embed_strict(img_file_paths, "image", "document")
        remember_text_vectors(vectors, self, "image")  # a captioned image's words get their vector in the store
        return vectors

    async def _aget_image_embeddings(self, img_file_paths: List[Any]) -> List[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

    def get_image_query_embedding(self, image: Any) -> Embedding:
        """Embed an image as a query (the model's query prompt), for image-to-anything search."""
        return self._embed_strict([image], "image", "query")[0]

    async def aget_image_query_embedding(self, image: Any) -> Embedding:
        return await self._submit("image", "query", image)

    def get_image_embedding_batch(self, img_file_paths: List[Any], show_progress: bool = False,
                                  on_error: OnError = "raise") -> List[Embedding]:
        """Embed many images in one pipelined pass. With ``on_error="skip"`` the good images are returned
        in order and a ``SkippedItemsWarning`` lists the bad ones with their positions."""
        with self.callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}) as event:
            result = self.embed(img_file_paths, "image", on_error=on_error, show_progress=show_progress)
            embeddings = _report_skipped(result, "image embedding batch")
            remember_text_vectors(embeddings, self, "image")  # see text_vectors: MultiModalVectorStoreIndex's path
            event.on_end(payload={EventPayload.CHUNKS: list(img_file_paths), EventPayload.EMBEDDINGS: embeddings})
        return embeddings

    async def aget_image_embedding_batch(self, img_file_paths: List[Any], show_progress: bool = False,
                                         on_error: OnError = "raise") -> List[Embedding]:
        return await asyncio.to_thread(self.get_image_embedding_batch, img_file_paths, show_progress, on_error)

    # ---- text+image -----------------------------------------------------------------------------

    def get_text_image_embedding(self, text: str, image: Any, role: Role = "document") -> Embedding:
        """One fused embedding of text and image together (VLM embedders only)."""
        return self._embed_strict([{"text": text, "image": image}], "text+image", role)[0]

    async def aget_text_image_embedding(self, text: str, image: Any, role: Role = "document") -> Embedding:
        return await self._submit("text+image", role, {"text": text, "image": image})

    # ---- ingestion transformation ---------------------------------------------------------------

    def __call__(self, nodes: Sequence[BaseNode], show_progress: bool = False, on_error: OnError = "raise",
                 **kwargs: Any) -> Sequence[BaseNode]:
        """Set each node's embedding from its modality (an ingestion-pipeline transformation).

        A node with pixels: ``embedding`` from its image (or fused with its words when
        ``fuse_text_and_image``), and ``text_embedding`` from its words when it has any. Other nodes:
        ``embedding`` from their text. With ``on_error="skip"`` nodes whose image can't be loaded are
        left out of the returned list and reported in a ``SkippedItemsWarning``.
        """
        check_on_error(on_error)
        kept, failures = self.embed_nodes([read_node(node) for node in nodes], on_error=on_error,
                                          show_progress=show_progress)
        if failures:
            warnings.warn(SkippedItemsWarning("embedding nodes", failures), stacklevel=2)
        return kept

    def embed_nodes(self, nodes: Sequence[NodeParts], *, on_error: OnError = "raise",
                    show_progress: bool = False) -> tuple[List[BaseNode], List[ItemFailure]]:
        """``__call__`` on nodes already read (``inputs.read_node``): sets their vectors, returns the
        nodes that got them and the failures. A caller that decoded the pixels elsewhere (a Ray read
        task) passes ``NodeParts`` whose image is the decoded array, and the rule stays this one."""
        check_on_error(on_error)
        # Which field gets which vector is the store's rule (``NodeParts.field_inputs``).
        wanted = [parts.field_inputs(self._fuses(), self.late_interaction) for parts in nodes]
        text_of = {position: fields["text_embedding"] for position, fields in enumerate(wanted)
                   if "text_embedding" in fields}
        items: List[Union[Parts, Exception]] = [fields["embedding"] for fields in wanted]
        items += list(text_of.values())  # one pass: these batch with the text nodes
        outcomes = self._encode_parts(items, "document", stop_on_error=on_error == "raise",
                                      show_progress=show_progress)
        text_vectors = dict(zip(text_of, outcomes[len(nodes):]))
        kept, failures = [], []
        for position, (parts, outcome) in enumerate(zip(nodes, outcomes)):
            node = parts.node
            if isinstance(outcome, Exception):
                failures.append(ItemFailure(position, f"node {node.node_id} ({_item_label(outcome)})", outcome))
                continue
            node.embedding = list(outcome)
            if isinstance(outcome, PooledVector):
                attach_multivector(node, outcome.multivector)
            if position in text_vectors:
                node.text_embedding = text_vectors[position]  # type: ignore[attr-defined]
            kept.append(node)
        return kept, failures

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return await asyncio.to_thread(partial(self.__call__, nodes, **kwargs))

    def _fuses(self) -> bool:
        """Whether an ImageNode with text is embedded as one fused text+image input."""
        return self.fuse_text_and_image and self.supports("text+image")

    # ---- async dynamic batching -----------------------------------------------------------------

    async def _submit(self, modality: Modality, role: Role, item: Any) -> Embedding:
        key = (modality, role)
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = DynamicBatcher(partial(self._run_coalesced, modality, role), max_batch_size=self.embed_batch_size)
            self._batchers[key] = batcher
        return await batcher.submit(item)

    def _run_coalesced(self, modality: Modality, role: Role, items: Sequence[Any]) -> List[Outcome]:
        """One coalesced batch: each caller gets its vector, or its own error (never a neighbour's)."""
        parts: List[Union[Parts, Exception]] = []
        for position, item in enumerate(items):
            try:
                parts.append(self._read_input(item, position, modality))
            except (TypeError, ValueError) as exc:
                parts.append(exc)
        return self._encode_parts(parts, role, stop_on_error=False)


_PENDING: Any = None
"""Placeholder of a result not computed yet; every one is replaced before ``_encode_parts`` returns."""


def _aggregate(embeddings: List[Embedding], agg_fn: Optional[Callable[..., Embedding]]) -> Embedding:
    """LlamaIndex's aggregate (the mean by default); when every part carries token vectors, the
    aggregate carries them all: MaxSim over their union is the sum of each query's MaxSim."""
    aggregate = (agg_fn or mean_agg)(embeddings)
    if embeddings and all(isinstance(e, PooledVector) for e in embeddings):
        if len(embeddings) == 1 and agg_fn is None:
            return embeddings[0]
        return PooledVector(list(aggregate), np.vstack([e.multivector for e in embeddings]))  # type: ignore[attr-defined]
    return aggregate


def _is_late(model: Any) -> bool:
    from sentence_transformers import MultiVectorEncoder

    return isinstance(model, MultiVectorEncoder)


def _rebuild(cls: type, init_args: Dict[str, Any]) -> Any:
    """Unpickling: construct anew from the pickled configuration (loads the model here)."""
    return cls(**init_args)


def _item_label(error: Exception) -> str:
    return error.item if isinstance(error, ItemError) else type(error).__name__


def _as_result(outcomes: Sequence[Outcome]) -> EmbeddingResult:
    failures = [ItemFailure(position, _item_label(outcome), outcome)
                for position, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    return EmbeddingResult([None if isinstance(o, Exception) else o for o in outcomes], failures)


def _report_skipped(result: EmbeddingResult, what: str) -> List[Embedding]:
    if result.failures:
        warnings.warn(SkippedItemsWarning(what, result.failures), stacklevel=3)
    return [vector for vector in result.embeddings if vector is not None]
