"""Evidence for a list of hits: which localiser reads each hit, and their model calls batched.

Every localiser is written as a generator that yields the model calls it needs (``EmbedCall``: inputs
of one modality) and is sent their vectors, so one plan serves every driver: ``find_evidence``
(in-process), ``afind_evidence`` (async, in a thread or through the embedding's own async method),
and any caller that runs the calls itself (the server runs them through its embedding lane). The
hits' localisers advance in lockstep, and each round's calls of one modality go to the model as one
batch: five hits' crops are one forward pass, not five.

Which localiser reads a hit (``read_node`` says what the hit is):

| hit | evidence | how |
|---|---|---|
| a PDF page with a text layer | regions (lines) | the query's words on the page (``pdf_text``) |
| a page or image, late-interaction index | regions | per-patch MaxSim on the patch grid (``late``) |
| an image, page or video frame, single-vector model | regions | crops re-embedded (``crops``), when no line was found |
| a video frame | span | the hit frame's run of matching frames (``spans.frame_span``) |
| audio, or video embedded whole | spans | windows re-embedded (``spans.search_spans``) |
| any node with words | passages | sentences by words and meaning (``passages``) |
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional, Sequence

import numpy as np
from llama_index.core.schema import NodeWithScore

from ..errors import MMSTError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..inputs import QueryParts, image_ref, read_node
from ..media_refs import FRAME_TIME_KEY, media_input
from ..multivector import node_multivector, query_multivector
from ..types import Modality, Role
from .audio_template import match_offsets
from .video_template import match_frames
from .crops import CropSettings, search_regions
from .kinds import Evidence, Passage, Region, Span, by_kind
from .late import late_regions, layout_for, pooled_layout, unpooled_tokens
from .passages import PassageSettings, search_passages
from .pdf_text import line_regions, page_lines, pdf_source
from .recordings import (DEFAULT_SAMPLING_RATE, DEFAULT_WINDOW_S, load_audio_track, load_video_track, local_model,
                         model_sampling_rate, model_window_s, recording_length_s)
from .spans import WindowSettings, frame_span, search_spans
from .words import QueryTerms

LOCALISER_ERRORS: tuple[type[BaseException], ...] = (MMSTError, ValueError, OSError)
"""What one hit's localiser may fail with (an unreadable file, a refused URL): that hit gets no
evidence and a warning names it; the other hits keep theirs."""


@dataclass(frozen=True)
class EmbedCall:
    """One model call a localiser needs: ``inputs`` of one ``modality``, embedded for ``role``."""

    inputs: list[Any] = field(repr=False)
    modality: Modality
    role: Role = "document"


@dataclass(frozen=True)
class EvidenceSettings:
    """How much work evidence does per hit, per family."""

    crops: CropSettings = CropSettings()
    passages: PassageSettings = PassageSettings()
    windows: WindowSettings = WindowSettings()
    regions: int = 3
    """Most regions per hit (text lines or late-interaction regions)."""
    language: str = "english"
    """The BM25 language of the store (its stemmer and stop words decide which words match)."""
    audio_window_s: Optional[float] = None
    """Window length for audio hits; None: the example's length, else the model's window, else 10 s."""
    video_window_s: Optional[float] = None
    """Window length for videos embedded whole; None: the example's length, else 5 s."""


@dataclass(frozen=True)
class EvidenceQuery:
    """What was searched: its words and example (``inputs.read_query``), and the vectors the search
    used when the caller has them (else they are embedded once more, as the search did)."""

    parts: QueryParts
    vector: Optional[Sequence[float]] = None
    multivector: Optional[np.ndarray] = None


class StoreLookup:
    """What evidence reads from the store the hits came from (any LlamaIndex store with ``get_nodes``):
    the hits' own stored vectors (an image's whole-image vector need not be embedded again) and the
    sampled frames of a frame hit's video."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def vectors(self, node_ids: Sequence[str]) -> dict[str, Sequence[float]]:
        """The stored vector (``embedding``) of each node that has one."""
        if not node_ids:
            return {}
        found = self.store.get_nodes(node_ids=list(node_ids))
        return {node.node_id: node.embedding for node in found if node is not None and node.embedding is not None}

    def frames(self, node: Any) -> list[tuple[float, Sequence[float]]]:
        """Every stored frame of ``node``'s video (same ``file_path``), as (time_s, stored image vector)."""
        from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

        path = node.metadata.get("file_path")
        if not isinstance(path, str):
            return []
        found = self.store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="file_path", value=path)]))
        return [(float(other.metadata[FRAME_TIME_KEY]), other.embedding) for other in found
                if isinstance(other.metadata.get(FRAME_TIME_KEY), (int, float)) and other.embedding is not None]


def store_lookup(store: Any) -> Optional[StoreLookup]:
    """A ``StoreLookup`` for ``store``, or None when there is none (or it can't list nodes)."""
    return StoreLookup(store) if store is not None and hasattr(store, "get_nodes") else None

Steps = Generator[EmbedCall, np.ndarray, list[list[Evidence]]]


class _Context:
    """What every localiser of one run shares: the query read once, the settings, the model's facts."""

    def __init__(self, embedding: Any, query: EvidenceQuery, settings: EvidenceSettings,
                 store: Optional[StoreLookup], hits: Sequence[NodeWithScore]) -> None:
        self.embedding, self.query, self.settings, self.store = embedding, query, settings, store
        self.hits = hits
        self.fetch: FetchOptions = getattr(embedding, "fetch_options", None) or FetchOptions()
        self.decode: DecodeOptions = getattr(embedding, "decode_options", None) or DecodeOptions()
        self.terms = QueryTerms(query.parts.text, settings.language)
        self.vector: Optional[np.ndarray] = None
        self.multivector: Optional[np.ndarray] = query.multivector
        self.late = bool(getattr(embedding, "late_interaction", False))
        self._example: Any = None
        self._example_length: Optional[float] = None
        self._audio: Optional[tuple[int, np.ndarray]] = None
        self._video: Any = None
        self.videos: dict[Any, list] = {}
        self.whole: dict[str, Sequence[float]] = {}
        """The stored vector of each image hit (its whole image), when the store was given."""
        """Each video's stored frames, read once per run (several frame hits of one video share them)."""

    def example_image(self) -> Any:
        if self._example is None and self.query.parts.example_kind == "image":
            self._example = image_ref(self.query.parts.example, 0).load(self.decode, self.fetch)
        return self._example

    def example_audio(self, rate: int) -> Optional[np.ndarray]:
        """The query's audio example at ``rate`` (None when the query has none)."""
        if self.query.parts.example_kind != "audio":
            return None
        if self._audio is None or self._audio[0] != rate:
            self._audio = (rate, media_input("audio", self.query.parts.example, 0).load_audio(rate, self.fetch))
        return self._audio[1]

    def example_video(self) -> Any:
        """The query's video example, decoded as video hits are (None when the query has none)."""
        if self.query.parts.example_kind != "video":
            return None
        if self._video is None:
            self._video = load_video_track(media_input("video", self.query.parts.example, 0), self.fetch)
        return self._video

    def window_s(self, kind: str) -> float:
        given = self.settings.audio_window_s if kind == "audio" else self.settings.video_window_s
        if given is not None:
            return given
        if self.query.parts.example_kind == kind:
            if self._example_length is None:
                self._example_length = recording_length_s(media_input(kind, self.query.parts.example, 0),  # type: ignore[arg-type]
                                                          self.fetch)
            return self._example_length
        return model_window_s(self.embedding, kind) or DEFAULT_WINDOW_S[kind]  # type: ignore[index]


def evidence_steps(hits: Sequence[NodeWithScore], embedding: Any, query: EvidenceQuery,
                   settings: EvidenceSettings = EvidenceSettings(), store: Any = None) -> Steps:
    """The evidence of each hit (a list per hit, best first within each kind), as a generator of the
    model calls it needs: it yields an ``EmbedCall``, is sent the vectors (rows in input order, a row
    of NaN for an input that failed) and returns the lists. ``store`` (the one the hits came from, or a
    ``StoreLookup``) gives the hits' stored vectors and a frame hit's neighbouring frames; without it
    each whole image is embedded again and a frame hit's span is its run among the hits themselves."""
    lookup = store if isinstance(store, StoreLookup) or store is None else store_lookup(store)
    context = _Context(embedding, query, settings, lookup, hits)
    if query.vector is not None:
        context.vector = np.asarray(query.vector, dtype=np.float64)
        context.multivector = context.multivector if context.multivector is not None else query_multivector(query.vector)
    elif _needs_vector(hits, context):
        kind = query.parts.example_kind
        inputs = [query.parts.example if kind else query.parts.text]
        vectors = yield EmbedCall(inputs, kind or "text", "query")
        context.vector = np.asarray(vectors[0], dtype=np.float64)
        carried = getattr(vectors, "multivectors", None)
        if carried is not None and context.multivector is None:
            context.multivector = carried[0]
    if context.store is not None and context.vector is not None and not context.late:
        images = [item.node.node_id for item in hits if read_node(item.node).image is not None]
        context.whole = context.store.vectors(images)
    tasks = [_hit_task(item, position, context) for position, item in enumerate(hits)]
    return (yield from _lockstep(tasks))


def _needs_vector(hits: Sequence[NodeWithScore], context: _Context) -> bool:
    parts = context.query.parts
    return bool(hits) and (parts.text is not None or parts.example is not None)


def _lockstep(tasks: list[Generator[EmbedCall, np.ndarray, list[Evidence]]]) -> Steps:
    """Run the tasks together: each round, their calls of one (modality, role) are one call."""
    results: list[list[Evidence]] = [[] for _ in tasks]
    pending: dict[int, EmbedCall] = {}

    def advance(index: int, sent: Optional[np.ndarray]) -> None:
        try:
            pending[index] = tasks[index].send(sent) if sent is not None else next(tasks[index])
        except StopIteration as done:
            results[index] = done.value or []

    for index in range(len(tasks)):
        advance(index, None)
    while pending:
        groups: dict[tuple[str, str], list[int]] = {}
        for index, call in pending.items():
            groups.setdefault((call.modality, call.role), []).append(index)
        for (modality, role), members in groups.items():
            calls = [pending.pop(index) for index in members]
            inputs = [item for call in calls for item in call.inputs]
            vectors = yield EmbedCall(inputs, modality, role)  # type: ignore[arg-type]
            start = 0
            for index, call in zip(members, calls):
                advance(index, vectors[start:start + len(call.inputs)])
                start += len(call.inputs)
    return results


def _through(search: Generator[Any, np.ndarray, Any], modality: Modality,
             convert: Optional[Callable[[Any], Any]] = None) -> Generator[EmbedCall, np.ndarray, Any]:
    """A localiser's requests (crops, windows, texts) as ``EmbedCall``s of ``modality``."""
    try:
        request = next(search)
        while True:
            inputs = [convert(item) for item in request] if convert else list(request)
            request = search.send((yield EmbedCall(inputs, modality)))
    except StopIteration as done:
        return done.value


def _hit_task(item: NodeWithScore, position: int, context: _Context
              ) -> Generator[EmbedCall, np.ndarray, list[Evidence]]:
    """One hit's evidence; a failure of its own (an unreadable file) leaves it without, with a warning."""
    try:
        found = yield from _hit_evidence(item, position, context)
    except LOCALISER_ERRORS as exc:
        warnings.warn(f"no evidence for hit {position + 1} ({item.node.node_id}): {exc}", RuntimeWarning, stacklevel=2)
        return []
    return by_kind(found)


def _hit_evidence(item: NodeWithScore, position: int, context: _Context
                  ) -> Generator[EmbedCall, np.ndarray, list[Evidence]]:
    node = item.node
    parts = read_node(node)
    metadata = node.metadata or {}
    found: list[Evidence] = []
    page = metadata.get("page") if isinstance(metadata.get("page"), int) else None
    if parts.image is not None:
        frame_time = metadata.get(FRAME_TIME_KEY)
        is_frame = isinstance(frame_time, (int, float)) and not isinstance(frame_time, bool)
        lines = []
        source = pdf_source(metadata)
        if source is not None and page is not None and context.terms:
            lines = line_regions(page_lines(source, page), context.terms, context.settings.regions)
            found += [Region(box, score, page) for box, score in lines]
        document = node_multivector(node)
        if context.multivector is not None and document is not None:
            found += _late_regions(node, parts, document, page, context)
        elif not lines and context.vector is not None and not context.late:
            image = parts.image.load(context.decode, context.fetch)
            example = context.example_image()
            stored = context.whole.get(node.node_id)
            whole = np.asarray(stored, dtype=np.float64) if stored is not None else None
            regions = yield from _through(search_regions(image, context.vector, example, context.settings.crops, whole),
                                          "image")
            found += [Region(box, score, None if is_frame else page) for box, score in regions]
        if is_frame:
            span = _frame_span(item, float(frame_time), context)
            if span is not None:
                found.append(span)
    elif parts.media is not None and context.vector is not None:
        found += yield from _recording_spans(parts.media, context)
    if parts.words.strip() and (context.terms or context.vector is not None):
        passages = yield from _through(search_passages(parts.words, context.vector, context.terms,
                                                       context.settings.passages), "text")
        found += [Passage(start, end, score) for start, end, score in passages]
    return found


def _late_regions(node: Any, parts: Any, document: np.ndarray, page: Optional[int], context: _Context) -> list[Evidence]:
    model = local_model(context.embedding)
    if model is None:
        return []
    image = parts.image.load(context.decode, context.fetch)
    layout = layout_for(model, image)
    if layout is None:
        return []
    if layout.tokens != len(document):  # a pooled index: map the stored rows back to their patches
        layout = pooled_layout(layout, unpooled_tokens(model, image), document)
    return [Region(box, score, page) for box, score in
            late_regions(context.multivector, document, layout, page, context.settings.regions)]  # type: ignore[arg-type]


def _recording_spans(ref: Any, context: _Context) -> Generator[EmbedCall, np.ndarray, list[Evidence]]:
    window = context.window_s(ref.kind)
    proposals: list[tuple[float, float]] = []
    if ref.kind == "audio":
        track: Any = load_audio_track(ref, model_sampling_rate(context.embedding) or DEFAULT_SAMPLING_RATE, context.fetch)
        example = context.example_audio(track.rate)
        if example is not None:
            proposals = match_offsets(track.samples, example, track.rate)
    else:
        track = load_video_track(ref, context.fetch)
        example_track = context.example_video()
        if example_track is not None:
            proposals = match_frames(track.frames, track.times, example_track.frames)
    search = search_spans(track.duration_s, window, context.vector, context.settings.windows,  # type: ignore[arg-type]
                          proposals)
    spans = yield from _through(search, ref.kind, lambda w: track.window(*w))
    return [Span(start, end, score) for start, end, score in spans]


def _frame_span(item: NodeWithScore, time_s: float, context: _Context) -> Optional[Span]:
    """The hit frame's span: among its video's stored frames (``StoreLookup.frames``) scored against the query,
    else among the frame hits of the same video in this list."""
    node = item.node
    video = _video_of(node)
    if context.store is not None and context.vector is not None:
        if video not in context.videos:
            context.videos[video] = sorted(context.store.frames(node), key=lambda frame: frame[0])
        frames = context.videos[video]
        if frames:
            times = [t for t, _ in frames]
            scores = [_cosine(vector, context.vector) for _, vector in frames]
            hit = int(np.argmin([abs(t - time_s) for t in times]))
            duration = node.metadata.get("duration_s")
            start, end, score = frame_span(times, scores, hit, float(duration) if isinstance(duration, (int, float)) else None)
            return Span(start, end, score)
    same = sorted({float(other.node.metadata[FRAME_TIME_KEY]) for other in context.hits
                   if _video_of(other.node) == video and isinstance(other.node.metadata.get(FRAME_TIME_KEY), (int, float))})
    if not same:
        return None
    step = _step(same) or 0.0
    run = _run_around(same, time_s, step)
    score = item.score if item.score is not None else 0.0
    return Span(max(0.0, run[0] - step / 2), run[1] + step / 2, float(score))


def _video_of(node: Any) -> Any:
    return node.metadata.get("file_path") or getattr(node, "image_path", None) or getattr(node, "image_url", None)


def _step(times: Sequence[float]) -> Optional[float]:
    gaps = [b - a for a, b in zip(times, times[1:]) if b - a > 1e-9]
    return min(gaps) if gaps else None


def _run_around(times: Sequence[float], time_s: float, step: float) -> tuple[float, float]:
    """The run of ``times`` (sorted) around ``time_s`` in which neighbours are at most ``step`` apart."""
    index = int(np.argmin([abs(t - time_s) for t in times]))
    first = last = index
    while first > 0 and times[first] - times[first - 1] <= step * 1.5:
        first -= 1
    while last < len(times) - 1 and times[last + 1] - times[last] <= step * 1.5:
        last += 1
    return times[first], times[last]


def _cosine(vector: Sequence[float], query: np.ndarray) -> float:
    a = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(query))
    return float(a @ query / norm) if norm > 0 else 0.0


# ---------------------------------------------------------------- drivers


def embed_rows(embedding: Any, call: EmbedCall) -> np.ndarray:
    """Run one call on an embedding: a (rows, dim) array, NaN rows for inputs that failed; a late
    model's query vectors also carry their token vectors (``.multivectors``)."""
    result = embedding.embed(call.inputs, call.modality, role=call.role, on_error="skip")
    return rows_of(result.embeddings)


class _Rows(np.ndarray):
    multivectors: Optional[list[Any]] = None


def rows_of(embeddings: Sequence[Optional[Sequence[float]]]) -> np.ndarray:
    """Vectors (None for a failed input) as the rows a localiser is sent: NaN rows for the failures, and a
    late model's query token vectors as ``.multivectors``."""
    width = next((len(v) for v in embeddings if v is not None), 1)
    rows = np.full((len(embeddings), width), np.nan)
    for index, vector in enumerate(embeddings):
        if vector is not None:
            rows[index] = vector
    out = rows.view(_Rows)
    carried = [query_multivector(v) if v is not None else None for v in embeddings]
    out.multivectors = carried if any(m is not None for m in carried) else None
    return out


def run_steps(steps: Steps, run: Callable[[EmbedCall], np.ndarray]) -> list[list[Evidence]]:
    """Drive ``evidence_steps`` with ``run`` for each call."""
    try:
        call = next(steps)
        while True:
            call = steps.send(run(call))
    except StopIteration as done:
        return done.value


async def arun_steps(steps: Steps, run: Callable[[EmbedCall], Any]) -> list[list[Evidence]]:
    """Drive ``evidence_steps`` with an async ``run``; the localisers' own work (decoding, cropping,
    matching) runs in a worker thread, never on the event loop."""
    def advance(sent: Optional[np.ndarray]) -> tuple[bool, Any]:
        # StopIteration can't cross into a Future: the generator's end comes back as a value.
        try:
            return False, (next(steps) if sent is None else steps.send(sent))
        except StopIteration as done:
            return True, done.value

    finished, value = await asyncio.to_thread(advance, None)
    while not finished:
        finished, value = await asyncio.to_thread(advance, await run(value))
    return value


def find_evidence(hits: Sequence[NodeWithScore], embedding: Any, query: EvidenceQuery,
                  settings: EvidenceSettings = EvidenceSettings(), store: Any = None) -> list[list[Evidence]]:
    """The evidence of each hit, computed now with ``embedding`` (see ``evidence_steps``; ``store``: the
    one the hits came from, optional)."""
    return run_steps(evidence_steps(hits, embedding, query, settings, store), lambda call: embed_rows(embedding, call))


async def afind_evidence(hits: Sequence[NodeWithScore], embedding: Any, query: EvidenceQuery,
                         settings: EvidenceSettings = EvidenceSettings(), store: Any = None) -> list[list[Evidence]]:
    """``find_evidence`` without blocking the event loop (a remote embedding's ``aembed`` is used)."""
    async def run(call: EmbedCall) -> np.ndarray:
        if hasattr(embedding, "aembed"):
            result = await embedding.aembed(call.inputs, call.modality, role=call.role, on_error="skip")
            return rows_of(result.embeddings)
        return await asyncio.to_thread(embed_rows, embedding, call)

    return await arun_steps(evidence_steps(hits, embedding, query, settings, store), run)
