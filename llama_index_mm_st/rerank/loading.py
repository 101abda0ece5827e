"""Choose and build a scorer from what the caller gave: a model id or directory, or a ready object.

The choice reads the checkpoint's ``config.json`` (``architectures``) against a table, so a new
family is one row, never a check on the model's name. Anything not in the table goes to
sentence-transformers' ``CrossEncoder``, which itself tells a sequence classifier from a yes/no
VLM reranker by the checkpoint's saved modules.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

import torch

from ..errors import MissingDependencyError
from ..hub import locate_model
from ..multivector import LATE_INTERACTION_ARCHITECTURES, native_checkpoint
from ..onnx.choice import BackendReport, Plan, log_choice, plan as backend_plan
from ..onnx.selection import select
from ..runtime import resolve_device, torchvision_install_line
from ..types import Backend, Precision
from .scorers.base import Scorer, score_head_name, store_linear_weights
from .scorers.cross_encoder import CrossEncoderScorer
from .scorers.forward import blip_kind, cross_encoder_kind
from .scorers.itm import BlipITMScorer
from .scorers.late import LateInteractionScorer

ModelSpec = Union[str, Path, Any]
"""A hub id or local directory, a ``CrossEncoder``, a ``MultiVectorEncoder``, a
``BlipForImageTextRetrieval`` or a ``Scorer``."""

MODEL_HELP = (
    "a model id or directory, a sentence_transformers.CrossEncoder or MultiVectorEncoder, a transformers "
    "BlipForImageTextRetrieval, or a Scorer (see llama_index_mm_st.rerank.Scorer)"
)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a checkpoint by name; ``model_kwargs``/``processor_kwargs`` pass through to transformers."""

    device: str | None = None
    precision: Precision = "auto"
    backend: Backend = "auto"
    instruction: str | None = None
    trust_remote_code: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    processor_kwargs: dict[str, Any] = field(default_factory=dict)

    def instruction_for(self, model: Any) -> str | None:
        """The instruction, for a CrossEncoder with a chat template to put it in (a VLM reranker)."""
        return self.instruction if model.supports("message") else None

    def check(self) -> None:
        """Refuse a (backend, precision) pair that can't run, before any model is loaded."""
        self.plan(resolve_device(self.device))

    def plan(self, device: str) -> Plan:
        """The validated (backend, precision) request for ``device`` (``onnx/choice.py``)."""
        return backend_plan(self.backend, self.precision, device)

    def weight_kwargs(self, device: str) -> dict[str, Any]:
        """fp32 asks for fp32 weights (exactness, and what ONNX graphs are exported from); lower
        precisions keep the checkpoint's dtype and autocast."""
        kwargs = dict(self.model_kwargs)
        plan = self.plan(device)
        if plan.torch_precision == "fp32" or plan.onnx_precision is not None:
            kwargs.setdefault("dtype", torch.float32)
        return kwargs


def load_cross_encoder(name: str, options: LoadOptions) -> Scorer:
    from sentence_transformers import CrossEncoder

    device = resolve_device(options.device)
    model = CrossEncoder(
        name,
        device=device,
        trust_remote_code=options.trust_remote_code,
        model_kwargs=options.weight_kwargs(device),
        processor_kwargs=dict(options.processor_kwargs) or None,
    )
    selection = select(cross_encoder_kind(model), name, options.plan(device), options.model_kwargs)
    scorer = CrossEncoderScorer(model, precision=selection.torch_precision, instruction=options.instruction_for(model),
                                name=name, scores=selection.forward)
    scorer.report = selection.report
    log_choice(f"reranker {name}", selection.report)
    head = score_head_name(model)
    store_linear_weights(model, scorer.precision, keep={head} if head else set())
    if head is not None and scorer.precision != "fp32":
        model.set_keep_in_fp32_modules([head])  # the score itself is computed in fp32
    return scorer


def load_blip_itm(name: str, options: LoadOptions) -> Scorer:
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    device = resolve_device(options.device)
    model = BlipForImageTextRetrieval.from_pretrained(
        name, trust_remote_code=options.trust_remote_code, **options.weight_kwargs(device)
    )
    processor = AutoProcessor.from_pretrained(
        name, trust_remote_code=options.trust_remote_code, **options.processor_kwargs
    )
    model = model.to(device).eval()
    selection = select(blip_kind(model, processor), name, options.plan(device), options.model_kwargs)
    scorer = BlipITMScorer(model, processor, precision=selection.torch_precision, name=name, towers=selection.forward)
    scorer.report = selection.report
    log_choice(f"reranker {name}", selection.report)
    store_linear_weights(model, scorer.precision, keep={"itm_head"})  # the scorer runs the head in fp32
    return scorer


def load_late_interaction(name: str, options: LoadOptions) -> Scorer:
    """A late-interaction retriever (ColPali family) as a MaxSim scorer."""
    from sentence_transformers import MultiVectorEncoder

    device = resolve_device(options.device)
    model = MultiVectorEncoder(name, device=device, trust_remote_code=options.trust_remote_code,
                               model_kwargs=options.weight_kwargs(device),
                               processor_kwargs=dict(options.processor_kwargs) or None)
    return LateInteractionScorer(model.eval(), precision=options.plan(device).torch_precision, name=name)


SCORER_BY_ARCHITECTURE: dict[str, Callable[[str, LoadOptions], Scorer]] = {
    "BlipForImageTextRetrieval": load_blip_itm,
    **{architecture: load_late_interaction for architecture in LATE_INTERACTION_ARCHITECTURES},
}
"""Checkpoints that sentence-transformers cannot load, by their ``config.json`` architecture."""


def scorer_loader(config: Any) -> Callable[[str, LoadOptions], Scorer]:
    """The loader for a checkpoint's config: the table's entry, else the CrossEncoder."""
    for architecture in getattr(config, "architectures", None) or ():
        if architecture in SCORER_BY_ARCHITECTURE:
            return SCORER_BY_ARCHITECTURE[architecture]
    return load_cross_encoder


def load_scorer(spec: ModelSpec, options: LoadOptions) -> Scorer:
    """A scorer for one spec: read the config of a name, wrap a ready model, or pass a Scorer through."""
    if isinstance(spec, (str, Path)):
        from transformers import AutoConfig

        # Settled before anything loads: a model neither local nor cached while the hub can't be reached
        # fails here in about a second, with one line (hub.locate_model).
        name = locate_model(native_checkpoint(str(spec)), "MultimodalReranker('/path/to/a/local/model')").load_from
        config = AutoConfig.from_pretrained(name, trust_remote_code=options.trust_remote_code)
        loader = scorer_loader(config)
        # VLM processors (Qwen-VL and the like) need torchvision; BLIP's image processor does not.
        needs_torchvision = loader is load_cross_encoder and hasattr(config, "vision_config")
        if needs_torchvision and importlib.util.find_spec("torchvision") is None:
            raise MissingDependencyError("torchvision", install=torchvision_install_line())
        return loader(name, options)
    return wrap_model(spec, options)


def wrap_model(model: Any, options: LoadOptions) -> Scorer:
    """A scorer around a ready object. Its device and weights are used as they are."""
    from sentence_transformers import CrossEncoder, MultiVectorEncoder
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    if isinstance(model, Scorer):
        return model
    device = str(getattr(model, "device", "cpu"))
    precision = options.plan(device).torch_precision  # a ready object runs on torch: no files key a graph
    if isinstance(model, MultiVectorEncoder):
        return LateInteractionScorer(model, precision=precision)
    if isinstance(model, CrossEncoder):
        return _as_given(CrossEncoderScorer(model, precision=precision, instruction=options.instruction_for(model)),
                         options, precision)
    if isinstance(model, BlipForImageTextRetrieval):
        source = getattr(model, "name_or_path", "")
        if not source:
            raise ValueError(
                "a BlipForImageTextRetrieval object needs its processor: pass BlipITMScorer(model, processor)"
            )
        processor = AutoProcessor.from_pretrained(source, **options.processor_kwargs)
        return _as_given(BlipITMScorer(model, processor, precision=precision), options, precision)
    raise TypeError(f"model has type {type(model).__name__}; accepted: {MODEL_HELP}")


def _as_given(scorer: Any, options: LoadOptions, precision: Precision) -> Any:
    """A scorer around a caller's model object: it runs on torch, and says so (one log line)."""
    reason = "a model given as an object runs on torch: no checkpoint files key an ONNX graph; pass its name or directory"
    scorer.report = BackendReport("torch", precision, reason, {"backend": options.backend, "precision": options.precision})
    if options.backend != "torch":
        log_choice(f"reranker {scorer.name}", scorer.report)
    return scorer
