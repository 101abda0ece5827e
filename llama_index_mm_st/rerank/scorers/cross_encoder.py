"""Sentence Transformers ``CrossEncoder`` scorers: text cross-encoders and yes/no VLM rerankers.

One class covers both, because sentence-transformers loads both as a ``CrossEncoder``: a BERT-style
classifier, or a VLM backbone followed by ``LogitScore`` (logit "yes" minus logit "no", as
Qwen3-VL-Reranker and jina-reranker-m0 are packaged). What a model can read comes from the model
itself (``CrossEncoder.supports``), never from its name, and the yes/no tokens live in its saved
``LogitScore`` config. Scores are exactly ``CrossEncoder.predict``'s (same activation), computed
under the reranker's precision. Text pairs go to ``predict`` in token-length sorted batches under
a padded-token budget (see ``batching``); pairs with images go in one call, which sorts them itself.
"""

from __future__ import annotations

from itertools import product
from typing import Any, Sequence

from sentence_transformers import CrossEncoder

from ...images import DecodeOptions
from ...media_refs import processor_frame_chooser, processor_sampling_rate
from ...runtime import resolve_precision
from ...types import Modality, Precision
from ..token_budget import budget_batches
from .base import LoadedParts, PairModality, ScorerAbilities
from ...onnx.choice import BackendReport
from .forward import PredictScores, Scores

CPU_TOKEN_BUDGET = 2048
"""Padded tokens per batch on a CPU, where padding costs as much as text; accelerators use ``batch_size`` alone."""


def _pairable(content: LoadedParts) -> Any:
    """LoadedParts as sentence-transformers takes one side of a pair: str, PIL image, decoded media
    (``{"array", ...}``) or a multimodal dict."""
    if content.media is not None:
        # sentence-transformers 6.2 turns a non-text pair into chat messages and fails (KeyError) on a
        # video given as {"array", "video_metadata"}; bare frames go through, sampled already.
        return content.media["array"] if content.media_kind == "video" else content.media
    if content.text is not None and content.image is not None:
        return {"text": content.text, "image": content.image}
    return content.text if content.text is not None else content.image


def cross_encoder_modalities(model: CrossEncoder) -> tuple[Modality, ...]:
    """The modalities a CrossEncoder reads on each side of a pair, as it reports them."""
    found: list[Modality] = []
    if model.supports("text"):
        found.append("text")
    if model.supports("image"):
        found.append("image")
        if model.supports(("image", "text")):
            found.append("text+image")
    for kind in ("audio", "video"):
        if model.supports(kind):
            found.append(kind)  # type: ignore[arg-type]
    return tuple(found)


class CrossEncoderScorer:
    """Scores pairs with a sentence-transformers ``CrossEncoder`` (text or VLM).

    ``instruction`` is passed as the model's prompt, which chat-template rerankers (the VLMs) put
    in their system turn as the task instruction; ``None`` keeps the model's default. Plain
    classifiers have no place for one, so giving them one is an error.
    ``max_batch_tokens`` caps padded tokens per batch for text-only models; ``None`` picks
    ``CPU_TOKEN_BUDGET`` on a CPU and no cap elsewhere.
    """

    report: BackendReport | None = None
    """Which path the forward pass takes and why (set by the loader; None for a scorer built directly)."""

    def __init__(
        self,
        model: CrossEncoder,
        *,
        precision: Precision = "auto",
        instruction: str | None = None,
        name: str | None = None,
        max_batch_tokens: int | None = None,
        scores: Scores | None = None,
    ) -> None:
        if model.num_labels != 1:
            raise ValueError(
                f"a reranking CrossEncoder must give one score per pair; this one has num_labels={model.num_labels}"
            )
        if instruction is not None and not model.supports("message"):
            raise ValueError(
                "an instruction goes into a reranker's chat template, and this CrossEncoder has none "
                f"(it reads {model.modalities})"
            )
        self.model = model
        self.instruction = instruction
        self.precision: Precision = resolve_precision(precision, str(model.device))
        self.forward_pass: Scores = scores or PredictScores(model, self.precision)
        """The forward pass over pairs: ``CrossEncoder.predict`` on torch, or its steps on ONNX Runtime."""
        modalities = cross_encoder_modalities(model)
        if not modalities:
            raise ValueError(f"the CrossEncoder reports no text or image modality (it reports {model.modalities})")
        # Media is read as the document side: a query is text or an image (by-example media queries are
        # embedded, not reranked against).
        queries = [m for m in modalities if m not in ("audio", "video")]
        self.pairs: frozenset[PairModality] = frozenset(product(queries, modalities))
        self.decode_options = DecodeOptions()
        processor = getattr(model[0], "processor", None) if len(model) else None
        self.sampling_rate = processor_sampling_rate(processor)
        self.frame_chooser = processor_frame_chooser(processor)
        # Token budgets need the model's own tokenizer on text pairs; a VLM's processor and chat
        # template make its lengths something else, so VLM pairs go to predict's own sorting.
        self.max_batch_tokens: int | None = None
        if modalities == ("text",):
            on_cpu = model.device.type == "cpu"
            self.max_batch_tokens = max_batch_tokens or (CPU_TOKEN_BUDGET if on_cpu else None)
        self.name = name or str(getattr(model.config, "_name_or_path", "") or type(model).__name__)

    @property
    def abilities(self) -> ScorerAbilities:
        return ScorerAbilities(instruction=self.instruction, sampling_rate=self.sampling_rate,
                               frame_chooser=self.frame_chooser, report=self.report)

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        if not documents:
            return []
        pairs = [(_pairable(query), _pairable(document)) for document in documents]
        if self.max_batch_tokens is not None:
            batches = budget_batches(self._token_lengths(pairs), batch_size, self.max_batch_tokens)
        else:
            batches = [list(range(len(pairs)))]
        scores = [0.0] * len(pairs)
        for batch in batches:
            values = self.forward_pass([pairs[i] for i in batch], batch_size, self.instruction, **self._media_kwargs(documents))
            for i, value in zip(batch, values, strict=True):
                scores[i] = float(value)
        return scores

    def _media_kwargs(self, documents: Sequence[LoadedParts]) -> dict[str, Any]:
        """Videos come with the frames the processor would sample already picked: don't sample again."""
        if self.frame_chooser is not None and any(d.media_kind == "video" for d in documents):
            return {"processing_kwargs": {"video": {"do_sample_frames": False}}}
        return {}

    def _token_lengths(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Tokens per pair as the model will see them (prompt aside), for batching only."""
        prompt = self.instruction or ""
        encoded = self.model.tokenizer(
            [prompt + q for q, _ in pairs], [d for _, d in pairs], truncation=True, max_length=self.model.max_seq_length
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def __repr__(self) -> str:
        precision = self.report.precision if self.report is not None else self.precision
        return f"CrossEncoderScorer({self.name!r}, backend={self.forward_pass.backend!r}, precision={precision!r})"
