"""Where a model comes from (a local directory, the Hugging Face cache, or the hub), settled before anything
loads, so a model that can't be had fails at once and in one line.

Loading a hub id with no network makes huggingface_hub retry every file with backoff (over a minute)
before transformers gives up with a long message; with ``HF_HUB_OFFLINE=1`` it still takes seconds. So
``locate_model`` settles the source first: a local directory is used as is; with ``HF_HUB_OFFLINE`` the
cache holds the model or the answer is no; otherwise one short request asks the hub for the model's card,
and when nothing answers a cached copy is used, else ``ModelUnavailableError`` names the model, says why
and how to go on. ``MultimodalEmbedding``, ``MultimodalReranker`` and ``mmst`` all call it, each naming
how its caller passes a local model (``how_local``). Nothing here imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .errors import ModelUnavailableError
from .multivector import native_checkpoint

HUB_TIMEOUT_S = 1.2
"""How long each phase of the one request to the hub (connect, send, read) may take: a hub that does not
answer within it is unreachable (the whole check stays under 2 s)."""
LOCAL_MODEL = "/path/to/a/local/model"
OFFLINE_HINT = "or set HF_HUB_OFFLINE=1 with a cache that holds the model (HF_HOME)"


@dataclass(frozen=True)
class ModelSource:
    """What the caller named (what an index records) and what to load it from (a directory or the id)."""

    name: str
    load_from: str


def looks_like_path(model: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything starting like a path, or with more parts, is a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


def model_name(model: str) -> str:
    """A local model directory by its absolute path, so ./m and /abs/m are the same model; a
    colpali-engine release by its transformers-native id (``multivector.NATIVE_CHECKPOINTS``)."""
    if looks_like_path(model) or os.path.isdir(model):
        return os.path.abspath(os.path.expanduser(model))
    return native_checkpoint(model)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def cached_snapshot(model: str) -> Optional[str]:
    """The cached snapshot directory of a hub id, or None when the cache lacks it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(model, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def _unreachable(model: str, cause: str, how_local: str) -> ModelUnavailableError:
    return ModelUnavailableError(model, f"the Hugging Face hub ({hub_endpoint()}) could not be reached ({cause}) and "
                                 f"the model is not in the local cache; continue with {how_local}, {OFFLINE_HINT}")


def _probe_hub(model: str, how_local: str) -> None:
    """One short request for the model's card: raises when the hub can't be reached or lacks the id.

    Asked with httpx directly: huggingface_hub's own first request also fetches a registry it builds its
    user agent from (with a timeout of its own, 3 s), which would double the wait on a hub that never answers."""
    import httpx
    from huggingface_hub import get_token

    token = get_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(f"{hub_endpoint().rstrip('/')}/api/models/{model}", headers=headers, timeout=HUB_TIMEOUT_S,
                           follow_redirects=True)
    except httpx.HTTPError as exc:
        raise _unreachable(model, type(exc).__name__, how_local) from exc
    if answer.status_code in (401, 404):
        raise ModelUnavailableError(model, "the Hugging Face hub has no such model (a private one needs HF_TOKEN); "
                                    f"pass a hub id or {how_local}")
    if answer.status_code >= 400 and answer.status_code != 403:  # 403: it exists; loading says what access it needs
        raise _unreachable(model, f"it answered HTTP {answer.status_code}", how_local)


def locate_model(model: str, how_local: str = f"a local model directory ({LOCAL_MODEL})") -> ModelSource:
    """Where to load ``model`` from, without loading it; ``ModelUnavailableError`` (one line, within about
    ``HUB_TIMEOUT_S``) when it can't be had. ``how_local`` says how the caller passes a local model."""
    name = model_name(model)
    if os.path.isdir(name):
        return ModelSource(name, name)
    if looks_like_path(model):
        raise ModelUnavailableError(model, f"no such model directory {name}; pass {how_local} that exists, or a hub id")
    from huggingface_hub import constants

    snapshot = cached_snapshot(name)
    if constants.HF_HUB_OFFLINE:
        if snapshot is None:
            raise ModelUnavailableError(name, f"HF_HUB_OFFLINE is set and the local cache ({constants.HF_HUB_CACHE}) "
                                        f"does not hold it; download it once with network, or pass {how_local}")
        return ModelSource(name, snapshot)
    try:
        _probe_hub(name, how_local)
    except ModelUnavailableError:
        if snapshot is not None:
            return ModelSource(name, snapshot)  # no hub, but cached: use the cached copy
        raise
    return ModelSource(name, name)
