"""Find and load the CLI's models, failing fast and in one line when the hub can't be reached.

Loading a hub id with no network makes huggingface_hub retry every file with backoff (over a minute)
before transformers gives up with a long message. So before loading, the CLI settles where the model
comes from: a local directory is used as is; a hub id in the local cache loads from there when the hub
can't be reached; an uncached id is checked with one short request to the hub, and if nothing answers
the error names the model, says the hub could not be reached and how to continue offline.

Nothing here imports torch: the heavy imports happen inside ``load_embedding``/``load_reranker``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, TypeVar

from ..defaults import DEFAULT_MODEL  # noqa: F401 - the CLI's default, read from the one set of defaults
from ..errors import MMSTError
from ..multivector import native_checkpoint

if TYPE_CHECKING:
    from ..embedding import MultimodalEmbedding
    from ..rerank import MultimodalReranker

HUB_TIMEOUT_S = 3.0
OFFLINE_HINT = ("continue with --model /path/to/a/local/model, or set HF_HUB_OFFLINE=1 with a cache that holds "
                "the model (HF_HOME)")

T = TypeVar("T")


class CLIError(MMSTError):
    """A user-facing failure: printed as one line."""


@dataclass(frozen=True)
class ModelSource:
    """What the user named (recorded in the index) and what to load it from (a directory or the id)."""

    name: str
    load_from: str


def looks_like_path(model: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything starting like a path, or with more parts, is a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


def model_name(model: str) -> str:
    """A local model directory is recorded by its absolute path, so ./m and /abs/m are the same model; a
    colpali-engine release by its transformers-native id (``multivector.NATIVE_CHECKPOINTS``)."""
    if looks_like_path(model) or os.path.isdir(model):
        return os.path.abspath(os.path.expanduser(model))
    return native_checkpoint(model)


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _cached_snapshot(model: str) -> Optional[str]:
    """The cached snapshot directory of a hub id, or None when the cache lacks it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(model, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def _unreachable(model: str, cause: str) -> CLIError:
    return CLIError(f"cannot load model {model!r}: the Hugging Face hub ({_hub_endpoint()}) could not be reached "
                    f"({cause}) and the model is not in the local cache; {OFFLINE_HINT}")


def _probe_hub(model: str) -> None:
    """One short request for the model's card: raises CLIError when the hub can't be reached or lacks the id."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HTTPError, RepositoryNotFoundError

    try:
        model_info(model, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return  # it exists; loading says what access it needs
    except RepositoryNotFoundError as exc:
        raise CLIError(f"cannot load model {model!r}: the Hugging Face hub has no such model (a private one needs "
                       "HF_TOKEN); pass a hub id or --model /path/to/a/local/model") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "no status"
        raise _unreachable(model, f"it answered HTTP {status}") from exc
    except (HTTPError, OSError) as exc:
        raise _unreachable(model, type(exc).__name__) from exc


def resolve_model(model: str) -> ModelSource:
    """Where to load ``model`` from, without loading it; a CLIError in one line when it can't be had."""
    name = model_name(model)
    if os.path.isdir(name):
        return ModelSource(name, name)
    if looks_like_path(model):
        raise CLIError(f"cannot load model {model!r}: no such model directory {name}")
    model = name  # a colpali-engine release id becomes its transformers-native one
    from huggingface_hub import constants

    snapshot = _cached_snapshot(model)
    if constants.HF_HUB_OFFLINE:
        if snapshot is None:
            raise CLIError(f"cannot load model {model!r}: HF_HUB_OFFLINE is set and the local cache "
                           f"({constants.HF_HUB_CACHE}) does not hold it; download it once with network, "
                           "or pass --model /path/to/a/local/model")
        return ModelSource(name, snapshot)
    try:
        _probe_hub(model)
    except CLIError:
        if snapshot is not None:
            return ModelSource(name, snapshot)  # offline, but cached: use the cached copy
        raise
    return ModelSource(name, model)


def _load(kind: str, source: ModelSource, build: Callable[[], T]) -> T:
    try:
        return build()
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"cannot load {kind} {source.name!r}: {first_line}") from exc


def load_embedding(source: ModelSource, **options: Any) -> "MultimodalEmbedding":
    """The embedding; ``options`` are ``MultimodalEmbedding`` fields (e.g. the URL opt-in)."""
    from ..embedding import MultimodalEmbedding

    return _load("model", source, lambda: MultimodalEmbedding(source.load_from, **options))


def load_reranker(models: Sequence[str], top_n: int, on_unsupported: str, **options: Any) -> "MultimodalReranker":
    """Several models: each node goes to the first that reads it; ``on_unsupported`` is always explicit,
    so a node no scorer reads behaves as the user asked whatever the library default is. ``options`` are
    other ``MultimodalReranker`` arguments (device, precision, backend)."""
    from ..rerank import MultimodalReranker

    sources = [resolve_model(model) for model in models]
    names = ", ".join(source.name for source in sources)
    return _load("reranker", ModelSource(names, names), lambda: MultimodalReranker(
        [source.load_from for source in sources], top_n=top_n, on_unsupported=on_unsupported, **options))


def model_backend_line(model: str) -> str:
    """``mmst info``'s line on the forward path ``backend="auto"`` measured for the index's model on this
    CPU (read from the ONNX cache; loads no model code)."""
    from ..onnx import recorded_choices

    local = model if os.path.isdir(model) else (_cached_snapshot(model) if not looks_like_path(model) else None)
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
