"""The package's errors, one small tree.

- ``MMSTError``: base of everything raised on purpose here.
  - ``ItemError`` (also a ``ValueError``): one named input item failed; ``item`` names it, ``reason`` says why.
    - ``ImageLoadError``: an image could not be read, decoded or was refused (missing, corrupt, over
      the pixel or byte limit).
    - ``MediaLoadError``: an audio or video item could not be read, decoded or was refused (missing,
      corrupt, truncated, zero-length, over the duration or byte limit, an array that is not a waveform).
    - ``CaptionFileError``: a ``captions.json``/``captions.csv`` could not be read; images in its
      folder load without captions.
    - ``EncodeError``: the model (or its processor) could not take this one item.
    - ``PathError``: a path a folder walk met cannot be read as a file at all (a link loop, a broken
      link, a FIFO or other special file, a name that is not valid UTF-8, an unreadable file).
  - ``UnsupportedFilterError`` (also a ``ValueError``): a metadata filter that Qdrant (or the Edge
    backend) cannot express; the message names the filter and why.
  - ``UnsupportedModalityError`` (also a ``ValueError``): the model cannot encode or score this modality.
  - ``SchemaMismatchError``: an existing collection or index does not match what we were asked to open.
  - ``StoreLockedError``: another process holds the embedded store.
  - ``MissingDependencyError`` (also an ``ImportError``): an optional extra is needed.
  - ``RemoteServerError``: a server the remote clients use could not be reached or refused a request
    (not for one item's reason: a bad item is its ``ItemError``, as in-process).

``ItemFailure`` records one failed item of a batch; ``SkippedItemsWarning`` carries the list of them
when a batch runs with ``on_error="skip"``, so nothing is dropped without a report.
``UnscoredNodesWarning`` says that the reranker kept nodes no scorer reads at their retrieval rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class MMSTError(Exception):
    """Base class of every error this package raises on purpose."""


class ItemError(MMSTError, ValueError):
    """One input item failed. ``item`` names it (path, URL or position), ``reason`` says why."""

    what = "item"

    def __init__(self, item: str, reason: str) -> None:
        self.item = item
        self.reason = reason
        super().__init__(f"cannot {self.what} {item}: {reason}")


class ImageLoadError(ItemError):
    """An image could not be loaded (missing, corrupt, refused by a limit)."""

    what = "load image"


class MediaLoadError(ItemError):
    """An audio or video item could not be loaded (missing, corrupt, truncated, empty, over a limit)."""

    what = "load media"


class CaptionFileError(ItemError):
    """A caption file could not be read; the images it describes still load, without captions."""

    what = "read caption file"


class EncodeError(ItemError):
    """The model or its processor refused one item; the others of its batch are still encoded."""

    what = "encode"


class PathError(ItemError):
    """A path cannot be read as a file (link loop, broken link, special file, undecodable name)."""

    what = "read"


class UnsupportedFilterError(MMSTError, ValueError):
    """A metadata filter that Qdrant cannot express; the message names the filter and why."""


class UnsupportedModalityError(MMSTError, ValueError):
    """The model or scorer cannot handle this modality."""


class SchemaMismatchError(MMSTError):
    """An existing store or collection does not match the requested schema."""


class StoreLockedError(MMSTError):
    """The embedded store is held by another process."""


class MissingDependencyError(MMSTError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is required for this: pip install 'llama-index-mm-st[{extra}]'")


@dataclass(frozen=True)
class ItemFailure:
    """One item of a batch that failed: its position in the input, a label for it, and the error."""

    position: int
    item: str
    error: Exception

    def __str__(self) -> str:
        return f"#{self.position} {self.item}: {self.error}"


class SkippedItemsWarning(UserWarning):
    """Raised as a warning when ``on_error="skip"`` left items out. ``failures`` lists them."""

    def __init__(self, what: str, failures: Sequence[ItemFailure]) -> None:
        self.failures = list(failures)
        lines = "; ".join(str(f) for f in self.failures)
        super().__init__(f"{what}: skipped {len(self.failures)} item(s): {lines}")


class UnscoredNodesWarning(UserWarning):
    """The reranker kept some nodes at their retrieval rank because no given scorer reads them."""


ON_ERROR_VALUES = ("raise", "skip")  # the values of types.OnError


def check_on_error(on_error: str) -> None:
    """Reject an unknown ``on_error`` value early, listing the valid ones."""
    if on_error not in ON_ERROR_VALUES:
        raise ValueError(f"on_error must be one of {ON_ERROR_VALUES}, got {on_error!r}")


class RemoteServerError(MMSTError):
    """A server the remote clients (``RemoteMultimodalEmbedding``, ``RemoteReranker``) talk to could not be
    reached, or refused a request for a reason that is not one item's (its message names the server)."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url, self.status = url, status
        super().__init__(f"the server at {url} {message}")
