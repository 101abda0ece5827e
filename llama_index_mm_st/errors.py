"""The package's errors, one small tree.

- ``MMSTError``: base of everything raised on purpose here.
  - ``ItemError`` (also a ``ValueError``): one named input item failed; ``item`` names it, ``reason`` says why.
    - ``ImageLoadError``: an image could not be read, decoded or was refused (missing, corrupt, over
      the pixel or byte limit).
    - ``MediaLoadError``: an audio or video item could not be read, decoded or was refused (missing,
      corrupt, truncated, zero-length, over the duration or byte limit, an array that is not a waveform).
    - ``CaptionFileError``: a caption or transcript file could not be read (a malformed
      ``captions.json``/``captions.csv``, a sidecar ``.srt``/``.vtt``/``.txt`` that is not text); the
      images or media it describes still load, without those words.
    - ``EncodeError``: the model (or its processor) could not take this one item.
    - ``PathError``: a path a folder walk met cannot be read as a file at all (a link loop, a broken
      link, a FIFO or other special file, a name that is not valid UTF-8, an unreadable file).
  - ``UnsupportedFilterError`` (also a ``ValueError``): a metadata filter that Qdrant (or the Edge
    backend) cannot express; the message names the filter and why.
  - ``UnsupportedModalityError`` (also a ``ValueError``): the model cannot encode or score this modality.
  - ``InvalidQueryError`` (also a ``ValueError``): a search its request makes impossible (empty text, two
    examples, an option it can't take); ``param`` names the request field, so a front end words it its
    own way (the CLI's flag, the server's 400 ``param``) without reading the message.
  - ``SchemaMismatchError``: an existing collection or index does not match what we were asked to open.
  - ``StoreLockedError``: another process holds the embedded store.
  - ``UnfinishedStoreError``: an embedded store's files are not a whole store and can't be finished
    safely (a shard that holds points but has lost its schema record); the message says what to do.
  - ``DiskFullError`` (also an ``OSError``): the disk holding an embedded store has too little free
    space for the next write; refused before the engine writes (it writes through memory maps, so
    a full disk would kill the process with SIGBUS instead of raising).
  - ``UnsupportedIndexError`` (also a ``TypeError``): a LlamaIndex index would silently drop these nodes as
    given (``MultiModalVectorStoreIndex(documents)`` keeps no ``ImageDocument``); the message names what works.
  - ``ModelUnavailableError`` (also an ``OSError``): a model that is neither local nor cached while the hub
    can't be reached (or has no such id); raised before anything loads, the message says how to go on.
  - ``MissingDependencyError`` (also an ``ImportError``): an optional extra is needed.
  - ``RemoteServerError``: a server the remote clients use could not be reached or refused a request
    (not for one item's reason: a bad item is its ``ItemError``, as in-process).

``ItemFailure`` records one failed item of a batch; ``SkippedItemsWarning`` carries the list of them
when a batch runs with ``on_error="skip"``, so nothing is dropped without a report.
``UnscoredNodesWarning`` says that the reranker kept nodes no scorer reads at their retrieval rank.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


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
    """A caption or transcript file could not be read; what it describes still loads, without its words."""

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


class InvalidQueryError(MMSTError, ValueError):
    """A search that its request makes impossible. ``param`` is the ``SearchRequest`` field it is about
    (``text``, ``image``, ``mode``, ``top_k``, ``rrf_weights``, ...), ``reason`` says why, and ``code`` names
    the kind of mistake (``empty_text``, ``no_query``, ``two_examples``, ``sparse_example``, ``no_words``,
    ``unsupported_modality``, ``bad_example``, ``invalid_option``), so front ends word it their own way
    without reading the message."""

    def __init__(self, param: str, reason: str, code: str = "invalid_option") -> None:
        super().__init__(f"{param}: {reason}")
        self.param, self.reason, self.code = param, reason, code


class SchemaMismatchError(MMSTError):
    """An existing store or collection does not match the requested schema."""


class StoreLockedError(MMSTError):
    """The embedded store is held by another process. ``holder`` is its record (``locks.Holder``: PID,
    command line, the URL when it is a server), when it wrote one."""

    def __init__(self, message: str, holder: Any = None) -> None:
        super().__init__(message)
        self.holder = holder


class UnfinishedStoreError(MMSTError):
    """An embedded store's files are not a whole store, and finishing or cleaning it could lose points."""


class DiskFullError(MMSTError, OSError):
    """The disk holding a store has less free space than the next write needs; nothing was written.

    ``free`` and ``needed`` are in bytes; the message is the one line a command-line user acts on.
    """

    def __init__(self, store: str, free: int, needed: int) -> None:
        super().__init__(
            f"the disk holding {store} has {format_bytes(free)} free, about {format_bytes(needed)} is needed "
            "to go on; free space and run the same command again"
        )
        self.store, self.free, self.needed = store, free, needed
        self.errno = errno.ENOSPC  # what callers that test an OSError's errno expect of a full disk

    def __str__(self) -> str:  # OSError's own __str__ would print its errno fields instead
        return str(self.args[0])


def format_bytes(size: int) -> str:
    """A size as people read it: ``812 KB``, ``64.0 MB``, ``1.25 GB`` (decimal units, as ``df -H``)."""
    if size < 1_000_000:
        return f"{max(0, size) / 1000:.0f} KB"
    if size < 1_000_000_000:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.2f} GB"


class UnsupportedIndexError(MMSTError, TypeError):
    """A LlamaIndex index that would drop these nodes as given (``MultiModalVectorStoreIndex(documents)``
    keeps no ``ImageDocument``); the message names the paths that keep them."""


class ModelUnavailableError(MMSTError, OSError):
    """A model that can't be had: not a local directory, not in the local cache, and the hub can't be
    reached (or has no such model). Raised before anything loads, in about a second; the message is one
    line that says how to go on. ``model`` is the name asked for, ``reason`` the rest of the message."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"cannot load model {model!r}: {reason}")
        self.model, self.reason = model, reason

    def __str__(self) -> str:  # OSError's own __str__ would print its errno fields instead
        return str(self.args[0])


class MissingDependencyError(MMSTError, ImportError):
    """An optional dependency is needed; the message names the extra to install (or, for a package that
    must match another one's build, the exact ``install`` line)."""

    def __init__(self, package: str, extra: str | None = None, install: str | None = None) -> None:
        line = install or f"pip install 'llama-index-mm-st[{extra}]'"
        super().__init__(f"{package} is required for this: {line}")


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


def refuse_unknown(what: str, given: "Iterable[str]", valid: "Iterable[str]", named: "Iterable[str]" = ()) -> None:
    """A misspelt keyword is an error, never a silently ignored setting: raise ``TypeError`` naming each
    unknown argument, the closest valid name when there is one, and every valid name. ``named``: the
    caller's own named parameters, never in ``given`` but offered as hints."""
    import difflib

    unknown = sorted(set(given) - set(valid))
    valid = sorted({*valid, *named})
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise TypeError(f"{what} got unexpected argument{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                    f"valid: {', '.join(valid)}")


class RemoteServerError(MMSTError):
    """A server the remote clients (``RemoteMultimodalEmbedding``, ``RemoteReranker``) talk to could not be
    reached, or refused a request for a reason that is not one item's (its message names the server)."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url, self.status = url, status
        super().__init__(f"the server at {url} {message}")
