"""The scorers' forward passes on torch or ONNX Runtime: text cross-encoders and BLIP's two towers.

As in the embedding (``embedding/forward.py``), only the forward pass changes: the scorers keep
their batching, token budgets, sorting, image handling and score heads. What is exported:

- a text ``CrossEncoder``: its module pipeline up to the raw scores (``model(features)["scores"]``);
  the activation (``CrossEncoder.activation_fn``) is applied to the graph's output as ``predict``
  applies it. VLM rerankers (chat templates, pixel budgets) stay on torch.
- BLIP ITM: the vision tower (pixels -> patch states) and the text encoder with its cross-attention
  (tokens + image states -> the [CLS] state). The ITM head stays in torch, in fp32, as before.

Each is described once as a ``ModelKind`` (``cross_encoder_kind``, ``blip_kind``); ``onnx.selection.select``
does the rest, as for the embedding.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ...onnx.export import GraphSpec
from ...onnx.selection import ModelKind, Part, Probe
from ...onnx.session import OnnxGraph
from ...types import Precision
from .base import compute_context

PROBE_PAIRS = 16
_WORDS = "a photo of two dogs playing in the snow near an old red barn at sunset with friends".split()


def _texts(count: int, offset: int = 0) -> list[str]:
    return [" ".join(_WORDS[: 2 + (5 * i + offset) % len(_WORDS)]) for i in range(count)]


# ---- text cross-encoders ------------------------------------------------------------------------

class PredictScores:
    """Torch: ``CrossEncoder.predict`` itself, under the scorer's precision (autocast for bf16/fp16)."""

    backend = "torch"

    def __init__(self, model: Any, precision: Precision) -> None:
        self.model, self.precision = model, precision

    def __call__(self, pairs: Sequence[Any], batch_size: int, prompt: Optional[str], **kwargs: Any) -> np.ndarray:
        with compute_context(self.model.device, self.precision):
            return np.asarray(self.model.predict(list(pairs), batch_size=batch_size, prompt=prompt,
                                                 show_progress_bar=False, **kwargs), dtype=np.float32)


class OnnxScores:
    """ONNX Runtime: ``CrossEncoder.predict``'s steps for text pairs (preprocess, forward, activation,
    squeeze) with the forward pass on the graph."""

    backend = "onnx"

    def __init__(self, model: Any, graph: OnnxGraph) -> None:
        self.model, self.graph = model, graph

    def __call__(self, pairs: Sequence[Any], batch_size: int, prompt: Optional[str], **kwargs: Any) -> np.ndarray:
        scores = []
        for start in range(0, len(pairs), batch_size):
            features = self.model.preprocess(list(pairs[start : start + batch_size]), prompt=prompt, **kwargs)
            logits = torch.from_numpy(self.graph.run(features))
            if self.model.activation_fn is not None:
                logits = self.model.activation_fn(logits)
            scores.append(logits.reshape(len(logits), -1)[:, 0].numpy())
        return np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, dtype=np.float32)


Scores = Union[PredictScores, OnnxScores]


class _CrossEncoderLogits(torch.nn.Module):
    def __init__(self, model: Any, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = dict(zip(self.names, tensors))
        features["modality"] = "text"
        return self.model(features)["scores"]


def cross_encoder_kind(model: Any) -> ModelKind[Scores]:
    """A ``CrossEncoder`` as ``onnx.selection.select`` takes it: one graph up to the raw scores (text
    pairs only: VLM rerankers stay on torch), probed on ``PROBE_PAIRS`` text pairs."""
    blocker = "" if tuple(model.modalities) == ("text",) else \
        f"cross-encoders that read {model.modalities} (VLM rerankers) run on torch"

    def probe(torch_fp32: Scores, onnx_scores: Scores, lower: Sequence[Precision]) -> Probe:
        pairs = list(zip(_texts(PROBE_PAIRS), _texts(PROBE_PAIRS, offset=3)))
        runs: dict[str, Callable[[], Any]] = {"torch fp32": partial(torch_fp32, pairs, PROBE_PAIRS, None),
                                              "onnx fp32": partial(onnx_scores, pairs, PROBE_PAIRS, None)}
        runs.update({f"torch {p}": partial(PredictScores(model, p), pairs, PROBE_PAIRS, None) for p in lower})
        return Probe(PROBE_PAIRS, "pairs", f"a probe of {PROBE_PAIRS} text pairs", runs, _score_agreement)

    return ModelKind("cross-encoder", [Part("scores", ["cross-encoder scores"], partial(_cross_encoder_spec, model),
                                            "the cross-encoder")],
                     lambda precision: PredictScores(model, precision),
                     lambda graphs, fallback: OnnxScores(model, graphs["scores"]), probe,
                     parameters=sum(p.numel() for p in model.parameters()), blocker=blocker)


def _cross_encoder_spec(model: Any) -> GraphSpec:
    def tensors(pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        features = model.preprocess(pairs)
        return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}

    sample = tensors(list(zip(_texts(2), _texts(2, 4))))
    checks = [tensors([("x", "y")]), tensors(list(zip(_texts(3, 1), _texts(3, 7))))]
    return GraphSpec(_CrossEncoderLogits(model, list(sample)).eval(), sample, checks)


def _score_agreement(output: Any, reference: Any) -> float:
    """Agreement of two score lists: their Pearson correlation (1.0 when both are constant and equal)."""
    a, b = np.asarray(output, dtype=np.float64).ravel(), np.asarray(reference, dtype=np.float64).ravel()
    if np.std(a) == 0 or np.std(b) == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


# ---- BLIP image-text matching ---------------------------------------------------------------------

class TorchTowers:
    """BLIP's towers on torch: ``vision`` (pixels -> patch states), ``text_cls`` (tokens + image states -> [CLS])."""

    backend = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model

    def vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.vision_model.parameters()).dtype
        return self.model.vision_model(pixel_values=pixel_values.to(dtype)).last_hidden_state

    def text_cls(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        return self.model.text_encoder(
            input_ids=input_ids, attention_mask=attention_mask,
            encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
        ).last_hidden_state[:, 0, :]


class OnnxTowers:
    """BLIP's towers on ONNX Runtime; a tower without a graph runs on torch."""

    backend = "onnx"

    def __init__(self, vision: Optional[OnnxGraph], text: Optional[OnnxGraph], fallback: TorchTowers) -> None:
        self._vision, self._text, self.fallback = vision, text, fallback

    def vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self._vision is None:
            return self.fallback.vision(pixel_values)
        return torch.from_numpy(self._vision.run({"pixel_values": pixel_values}))

    def text_cls(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        if self._text is None:
            return self.fallback.text_cls(input_ids, attention_mask, image_embeds)
        return torch.from_numpy(self._text.run(
            {"input_ids": input_ids, "attention_mask": attention_mask, "image_embeds": image_embeds.float()}))


Towers = Union[TorchTowers, OnnxTowers]


class _Vision(torch.nn.Module):
    def __init__(self, towers: TorchTowers) -> None:
        super().__init__()
        self.model, self.towers = towers.model, towers

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.towers.vision(pixel_values)


class _TextCls(torch.nn.Module):
    def __init__(self, towers: TorchTowers) -> None:
        super().__init__()
        self.model, self.towers = towers.model, towers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        return self.towers.text_cls(input_ids, attention_mask, image_embeds)


def blip_kind(model: Any, processor: Any) -> ModelKind[Towers]:
    """BLIP ITM as ``onnx.selection.select`` takes it: the vision tower and the text encoder with its
    cross-attention (the ITM head stays in torch), probed on one text against 8 images."""
    torch_towers = TorchTowers(model)
    samples = _BlipSamples(processor, torch_towers)
    parts = [Part("vision", ["blip itm", "vision"], samples.vision_spec, "the vision tower"),
             Part("text", ["blip itm", "text"], samples.text_spec, "the text tower")]

    def probe(torch_fp32: Towers, onnx_towers: Towers, lower: Sequence[Precision]) -> Probe:
        rows = 8
        pixels, tokens = samples.pixels(rows), samples.tokens(rows)

        def run(towers: Any, autocast: Precision = "fp32") -> Callable[[], np.ndarray]:
            def once() -> np.ndarray:
                with torch.inference_mode(), compute_context(model.device, autocast):
                    return towers.text_cls(tokens["input_ids"], tokens["attention_mask"],
                                           towers.vision(pixels)).float().numpy()
            return once

        runs = {"torch fp32": run(torch_fp32), "onnx fp32": run(onnx_towers)}
        runs.update({f"torch {p}": run(torch_fp32, p) for p in lower})
        return Probe(rows, "pairs", f"a text against a probe of {rows} images", runs)

    return ModelKind("blip itm", parts, lambda precision: torch_towers,
                     lambda graphs, fallback: OnnxTowers(graphs.get("vision"), graphs.get("text"), fallback),  # type: ignore[arg-type]
                     probe, parameters=sum(p.numel() for p in model.parameters()))


class _BlipSamples:
    """Inputs for tracing and checking BLIP's towers: varied image counts and text lengths."""

    def __init__(self, processor: Any, towers: TorchTowers) -> None:
        self.processor, self.towers = processor, towers
        self.rng = np.random.default_rng(0)

    def pixels(self, count: int) -> torch.Tensor:
        images = [Image.fromarray(self.rng.integers(0, 256, (40 + 13 * i, 52 + 7 * i, 3), dtype=np.uint8))
                  for i in range(count)]
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def tokens(self, count: int, offset: int = 0) -> dict[str, torch.Tensor]:
        tokens = self.processor.tokenizer(_texts(count, offset), padding=True, truncation=True, return_tensors="pt")
        return {key: tokens[key] for key in ("input_ids", "attention_mask")}

    def vision_spec(self) -> GraphSpec:
        return GraphSpec(_Vision(self.towers).eval(), {"pixel_values": self.pixels(2)},
                         [{"pixel_values": self.pixels(1)}, {"pixel_values": self.pixels(3)}])

    def text_spec(self) -> GraphSpec:
        def sample(count: int, offset: int) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                states = self.towers.vision(self.pixels(count))
            return {**self.tokens(count, offset), "image_embeds": states}

        return GraphSpec(_TextCls(self.towers).eval(), sample(2, 0), [sample(1, 5), sample(3, 2)],
                         dynamic_dims={"input_ids": [0, 1], "attention_mask": [0, 1], "image_embeds": [0]})
