"""Find and load the CLI's models, failing fast and in one line when the hub can't be reached.

Where a model comes from is settled by the library's one rule (``hub.locate_model``: a local directory,
the local cache, or one short request to the hub), with the flag the user passes a local model by in
the advice (``--model``, ``--rerank``), before anything loads.

Nothing here imports torch: the heavy imports happen inside ``load_embedding``/``load_reranker``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar, Union

from ..defaults import DEFAULT_MODEL  # noqa: F401 - the CLI's default, read from the one set of defaults
from ..errors import MMSTError, ModelUnavailableError
from ..hub import LOCAL_MODEL, ModelSource, cached_snapshot, locate_model, looks_like_path, model_name

if TYPE_CHECKING:
    from ..embedding import MultimodalEmbedding
    from ..rerank import MultimodalReranker

__all__ = ["CLIError", "DEFAULT_MODEL", "ModelSource", "load_embedding", "load_reranker", "looks_like_path", "model_name",
           "resolve_model", "resolve_models"]

T = TypeVar("T")


class CLIError(MMSTError):
    """A user-facing failure: printed as one line."""


def resolve_model(model: str, flag: str = "--model") -> ModelSource:
    """Where to load ``model`` from, without loading it; ``ModelUnavailableError`` in one line, naming
    ``flag`` as the way to pass a local model, when it can't be had."""
    return locate_model(model, how_local=f"{flag} {LOCAL_MODEL}")


def resolve_models(models: Sequence[str], flag: str) -> list[ModelSource]:
    """Several models settled at once, before any loads (``--rerank`` given more than once)."""
    return [resolve_model(model, flag) for model in models]


def _load(kind: str, source: ModelSource, build: Callable[[], T]) -> T:
    try:
        return build()
    except ModelUnavailableError:
        raise  # already one line naming the model
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"cannot load {kind} {source.name!r}: {first_line}") from exc


def load_embedding(source: ModelSource, **options: Any) -> "MultimodalEmbedding":
    """The embedding; ``options`` are ``MultimodalEmbedding`` fields (e.g. the URL opt-in)."""
    from ..embedding import MultimodalEmbedding

    return _load("model", source, lambda: MultimodalEmbedding(source.load_from, **options))


def load_reranker(models: Sequence[Union[str, ModelSource]], top_n: int, on_unsupported: str,
                  **options: Any) -> "MultimodalReranker":
    """Several models: each node goes to the first that reads it; ``on_unsupported`` is always explicit,
    so a node no scorer reads behaves as the user asked whatever the library default is. ``options`` are
    other ``MultimodalReranker`` arguments (device, precision, backend). ``models``: ids or directories
    (settled here, the advice naming ``--rerank``), or sources settled already."""
    from ..rerank import MultimodalReranker

    sources = [m if isinstance(m, ModelSource) else resolve_model(m, "--rerank") for m in models]
    names = ", ".join(source.name for source in sources)
    return _load("reranker", ModelSource(names, names), lambda: MultimodalReranker(
        [source.load_from for source in sources], top_n=top_n, on_unsupported=on_unsupported, **options))


def model_backend_line(model: str) -> str:
    """``mmst info``'s line on the forward path ``backend="auto"`` measured for the index's model on this
    CPU (read from the ONNX cache; loads no model code)."""
    from ..onnx import recorded_choices

    local = model if os.path.isdir(model) else (cached_snapshot(model) if not looks_like_path(model) else None)
    found = recorded_choices(local) if local else []
    if not found:
        return "model backend: not measured on this CPU yet (backend='auto' measures when the model first loads)"
    return f"model backend: {found[0].backend} {found[0].precision} ({found[0].reason})"


BACKEND_HELP = ("the models' forward pass: auto (default: the fastest exact path measured on this CPU, torch on a "
                "GPU), torch, or onnx (ONNX Runtime, extra [onnx]; exported once, cached)")
PRECISION_HELP = ("auto (default): bf16 where the hardware runs it natively (auto's measured choice on a CPU), else "
                  "fp32; fp32 is exact; int8 is ONNX Runtime's quantization (opt-in, see the README's agreement table)")


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--precision``: how the models run (``mmst index``, ``search``, ``eval``, ``serve``)."""
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default=None, help=BACKEND_HELP)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16", "int8"], default=None,
                        help=PRECISION_HELP)


def backend_option(args: argparse.Namespace) -> dict[str, Any]:
    """``--backend``/``--precision`` as model options; only those given, so the library defaults apply."""
    return {name: getattr(args, name) for name in ("backend", "precision") if getattr(args, name, None)}
