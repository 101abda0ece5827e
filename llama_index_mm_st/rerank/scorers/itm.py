"""BLIP image-text matching (ITM) through transformers' ``BlipForImageTextRetrieval``.

sentence-transformers cannot load these, yet they are the practical cross-modal reranker on a CPU.
The score is the ITM head's softmax probability of "match", exactly what
``model(input_ids, pixel_values, use_itm_head=True).itm_score.softmax(-1)[:, 1]`` gives.

Why not call ``model(...)`` per pair: the vision tower is most of the cost and does not depend on
the text. We run it once per distinct image (once in total for an image query against many texts)
and feed its output to the text encoder's cross-attention for each pair, in batches of texts
sorted by token length so little compute goes to padding.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...images import DecodeOptions
from ...runtime import resolve_precision
from ...types import Precision
from .base import LoadedParts, PairModality, ScorerAbilities, compute_context
from ...onnx.choice import BackendReport
from .forward import TorchTowers, Towers

ITM_MATCH_INDEX = 1
"""Column of the ITM head's logits that means "the text matches the image"."""


class BlipITMScorer:
    """Scores text against images with a BLIP ITM head: a text query against image documents, or an
    image query against text documents."""

    pairs: frozenset[PairModality] = frozenset({("text", "image"), ("image", "text")})
    report: BackendReport | None = None
    """Which path the towers take and why (set by the loader; None for a scorer built directly)."""

    def __init__(self, model: Any, processor: Any, *, precision: Precision = "auto", name: str | None = None,
                 towers: Towers | None = None) -> None:
        self.model = model.eval()
        self.towers: Towers = towers or TorchTowers(model)
        """The vision tower and the text encoder: on torch, or on ONNX Runtime (``forward.py``)."""
        self.processor = processor
        self.device = next(model.parameters()).device
        self.precision: Precision = resolve_precision(precision, str(self.device))
        size = getattr(model.config.vision_config, "image_size", None)
        # JPEGs may decode at a reduced scale, never below what the model resizes to.
        self.decode_options = DecodeOptions(draft_size=(size, size) if size else None)
        self.name = name or str(getattr(model.config, "_name_or_path", "") or type(model).__name__)

    @property
    def abilities(self) -> ScorerAbilities:
        return ScorerAbilities(report=self.report)

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        if not documents:
            return []
        if query.modality == "image" and all(d.modality == "text" for d in documents):
            return self._image_against_texts(query.image, [d.text for d in documents], batch_size)  # type: ignore[misc]
        if query.modality == "text" and all(d.modality == "image" for d in documents):
            return self._text_against_images(query.text, [d.image for d in documents], batch_size)  # type: ignore[misc]
        kinds = sorted({(query.modality, d.modality) for d in documents})
        raise ValueError(f"{self.name} scores (text, image) and (image, text) pairs, got {kinds}")

    @torch.inference_mode()
    def _image_against_texts(self, image: Any, texts: list[str], batch_size: int) -> list[float]:
        with compute_context(self.device, self.precision):
            image_embeds = self._vision(self._pixels([image]))
        order = np.argsort([-len(text) for text in texts], kind="stable")
        scores = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            tokens = self._tokens([texts[i] for i in chosen])
            with compute_context(self.device, self.precision):
                expanded = image_embeds.expand(len(chosen), -1, -1)
                scores[chosen] = self._match(tokens, expanded)
        return scores.tolist()

    @torch.inference_mode()
    def _text_against_images(self, text: str, images: list[Any], batch_size: int) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            tokens = self._tokens([text] * len(chunk))
            with compute_context(self.device, self.precision):
                scores.extend(self._match(tokens, self._vision(self._pixels(chunk))).tolist())
        return scores

    def _pixels(self, images: list[Any]) -> torch.Tensor:
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device)

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return {key: tokens[key].to(self.device) for key in ("input_ids", "attention_mask")}

    def _vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.towers.vision(pixel_values)

    def _match(self, tokens: dict[str, torch.Tensor], image_embeds: torch.Tensor) -> np.ndarray:
        """ITM probability of a match for each (text, image) row, as the model's forward computes it."""
        cls = self.towers.text_cls(tokens["input_ids"], tokens["attention_mask"], image_embeds)
        head = self.model.itm_head
        with torch.autocast(device_type=self.device.type, enabled=False):  # fp32 score, never bf16 steps
            logits = torch.nn.functional.linear(cls.float(), head.weight.float(), head.bias.float())
        return logits.softmax(dim=-1)[:, ITM_MATCH_INDEX].cpu().numpy()

    def __repr__(self) -> str:
        precision = self.report.precision if self.report is not None else self.precision
        return f"BlipITMScorer({self.name!r}, backend={self.towers.backend!r}, precision={precision!r})"
