"""What a server is allowed to take on: its limits, its key and its URL policy, in one frozen value.

Defaults are sized for one model on one machine: a queue a few batches deep, a per-batch budget that
keeps a burst of large images from taking the memory a burst of short texts would not, and a wait
bound after which a client is better served by a fast 429 (its SDK retries) than by a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..fetch import FetchOptions

MiB = 1024 * 1024


class LimitError(ValueError):
    """A limit out of range; ``field`` names it (the CLI names its flag)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"Limits.{field} {message}")
        self.field = field


@dataclass(frozen=True)
class Limits:
    """Bounds on the queue, each batch and each request (see the README's deployment section)."""

    max_queue: int = 4096
    """Items (texts, images, clips; a rerank or search request counts as one) waiting per model. A request
    that does not fit is answered 429 with ``Retry-After``; an empty queue admits any request."""
    max_queue_wait_s: float = 30.0
    """Longest an item may wait for the model. An item that waited longer gets 429 instead of its result,
    and a request whose estimated wait is longer is refused at once."""
    max_batch_items: int = 256
    """Items per model batch (the forward passes inside run ``MultimodalEmbedding.batch_size`` at a time)."""
    max_batch_tokens: int = 32_768
    """Text budget of one batch, in tokens, counted as an upper bound: a text's UTF-8 bytes plus 2, at most
    the model's window (no text costs more than that, whatever its tokenizer)."""
    max_batch_pixels: int = 128_000_000
    """Image budget of one batch, in source pixels (width x height from the header): decoding is what
    takes memory, and a 12-megapixel photo costs 40 thumbnails."""
    max_batch_media_seconds: float = 600.0
    """Audio and video budget of one batch, in seconds of media (from the header)."""
    max_request_items: int = 2048
    """Inputs per embeddings request, documents per rerank request; more is a 413."""
    max_body_bytes: int = 64 * MiB
    """Largest request body; more is a 413 (checked on the declared length and on the bytes read)."""
    max_top_k: int = 1000
    """Largest ``top_k`` of a search and ``top_n`` of a rerank."""
    batch_timeout_s: float = 300.0
    """A batch running longer than this marks its model's worker as hung: ``/health`` turns 503."""

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_batch_items", "max_batch_tokens", "max_batch_pixels", "max_request_items",
                     "max_body_bytes", "max_top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LimitError(name, f"must be a whole number >= 1, got {value!r}")
        for name in ("max_queue_wait_s", "max_batch_media_seconds", "batch_timeout_s"):
            if not getattr(self, name) > 0:
                raise LimitError(name, f"must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ServeSettings:
    """A server's configuration besides its components.

    ``api_key``: required on every route but ``/health`` and ``/metrics`` (``Authorization: Bearer KEY``
    or the bare key); None serves without one. ``fetch``: the URL policy for media given as http(s)
    URLs (``fetch.FetchOptions``; off by default, as in the library). ``model_id`` / ``rerank_id``: the
    names clients send as ``model`` (default: the embedding's and the reranker's ``model_name``).
    """

    api_key: Optional[str] = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)
    fetch: FetchOptions = field(default_factory=FetchOptions)
    model_id: Optional[str] = None
    rerank_id: Optional[str] = None
    warm_up: bool = True
    """Run every model once before reporting ready, so the first client does not pay for lazy set-up."""
    read_only: bool = False
    """Serve the index without ``/v1/documents`` writes (searches and listing only)."""
    index_root: Optional[Path] = None
    """Documents given as server paths are read only under this folder; None: no server path is read."""
    files_dir: Optional[Path] = None
    """Where uploaded documents are kept (the index points at them). None: beside an embedded index
    (``<store>/<collection>.files``); a server-backed index without it takes no uploads."""

    def files_path(self, store: Any) -> Optional[Path]:
        """The uploads folder for ``store``: ``files_dir``, else beside an embedded store's own folder."""
        if self.files_dir is not None:
            return Path(self.files_dir)
        local = getattr(store, "local_path", None)
        return Path(local + ".files") if local else None

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty: give a key, or None to serve without one")
