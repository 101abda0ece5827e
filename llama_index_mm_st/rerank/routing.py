"""Routing: which scorer reads each (query, node) pair, and the decoded images the pairs need.

Each side is ``Parts`` (``inputs.py``): a node is read with ``read_node``, exactly as the embedding and
the store read it, so an ``ImageDocument`` is an image here too. Routing is by modality only. A side
that carries text and an image is offered to scorers whole first, then as its image, then as its text
(``VIEWS``), so a VLM reads an image with its caption while a BLIP head still gets the image. Images
are decoded in parallel, once, with the decode options of the scorer that reads them; a failed image
becomes an ``ImageLoadError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from llama_index.core.schema import BaseNode, QueryBundle
from PIL import Image

from ..errors import ImageLoadError, ItemError
from ..fetch import FetchOptions
from ..images import DecodeOptions, map_isolated
from ..inputs import ImageRef, Parts, read_node, read_query
from ..media_refs import media_model_input
from ..text_limits import bound_text, char_limit, declared_window
from ..types import Modality
from .scorers.base import LoadedParts, Scorer, abilities_of

VIEWS: dict[Modality, tuple[Modality, ...]] = {
    "text+image": ("text+image", "image", "text"),
    "image": ("image",),
    "text": ("text",),
    "audio": ("audio",),
    "video": ("video",),
}
"""The ways a side may be read, richest first."""

@dataclass(frozen=True)
class Route:
    """Candidate ``position`` goes to ``scorers[scorer]`` as the pair (query, document)."""

    position: int
    scorer: int
    query: Parts
    document: Parts


def query_side(bundle: QueryBundle) -> Parts:
    """The query's words and image, read by the package's one query rule (``inputs.read_query``: the
    bundle's ``image_path``, else a ``data:`` image URI in ``custom_embedding_strs`` or as the query itself)."""
    side = read_query(bundle).image_parts()
    if side.text is None and side.image is None:
        raise ValueError("the query has neither text (query_str) nor an image (image_path or a data: URI)")
    return side


def node_side(node: BaseNode) -> Parts:
    """What a node offers a scorer: its pixels, its words, or both (the words as an embedding model
    reads them). A node with neither raises ``ImageLoadError`` naming it: there is nothing to score."""
    parts = read_node(node)
    if parts.has_media:
        return Parts(media=parts.media)
    if parts.image is None and not parts.words.strip():
        raise ImageLoadError(f"node {node.node_id}", "the node has no image, image_path, image_url or text")
    return Parts(text=parts.embed_text if parts.words.strip() else None, image=parts.image)


def find_route(position: int, query: Parts, document: Parts, scorers: Sequence[Scorer]) -> Route | None:
    """The richest views of both sides that some scorer reads; the first such scorer wins."""
    for query_view in VIEWS[query.modality]:
        for document_view in VIEWS[document.modality]:
            for index, scorer in enumerate(scorers):
                if (query_view, document_view) in scorer.pairs:
                    return Route(position, index, query.view(query_view), document.view(document_view))
    return None


def load_images(
    routes: Sequence[Route], scorers: Sequence[Scorer], workers: int | None = None, fetch: FetchOptions = FetchOptions()
) -> tuple[dict[tuple[int, int], Image.Image], dict[int, ImageLoadError]]:
    """Decode every image the routes need, in parallel.

    Returns images keyed by (position, 0 for the query or 1 for the document) and the document
    failures by position. A query image that fails raises at once: no pair can be scored without it.
    """
    jobs: list[tuple[tuple[int, int], ImageRef, DecodeOptions]] = []
    for route in routes:
        options = scorers[route.scorer].decode_options
        for side_index, side in enumerate((route.query, route.document)):
            if side.image is not None:
                jobs.append(((route.position, side_index), side.image, options))
    # The query image is shared by every route: decode it once per distinct decode option.
    shared: dict[tuple[ImageRef, DecodeOptions], int] = {}
    unique: list[tuple[ImageRef, DecodeOptions]] = []
    for _, ref, options in jobs:
        if (ref, options) not in shared:
            shared[(ref, options)] = len(unique)
            unique.append((ref, options))
    results = map_isolated(lambda job: job[0].load(job[1], fetch), unique, workers)
    images: dict[tuple[int, int], Image.Image] = {}
    failures: dict[int, ImageLoadError] = {}
    for key, ref, options in jobs:
        result = results[shared[(ref, options)]]
        if isinstance(result, ImageLoadError):
            if key[1] == 0:
                raise result
            failures[key[0]] = result
        else:
            images[key] = result
    return images, failures


def load_media(routes: Sequence[Route], scorers: Sequence[Scorer], fetch: FetchOptions = FetchOptions(),
               workers: int | None = None) -> tuple[dict[int, dict], dict[int, ItemError]]:
    """Decode every document's audio or video the routes need, in parallel, as its scorer takes it (the
    scorer's sampling rate and frame choice). Returns inputs and failures keyed by position."""
    jobs = [(route.position, route.document.media, scorers[route.scorer]) for route in routes
            if route.document.media is not None]
    results = map_isolated(
        lambda job: media_model_input(job[1], abilities_of(job[2]).sampling_rate,
                                      abilities_of(job[2]).frame_chooser, fetch),
        jobs, workers, errors=(ItemError,))
    loaded: dict[int, dict] = {}
    failures: dict[int, ItemError] = {}
    for (position, _, _), result in zip(jobs, results):
        if isinstance(result, ItemError):
            failures[position] = result
        else:
            loaded[position] = result
    return loaded, failures


def content(side: Parts, image: Image.Image | None, media: dict | None = None, text_chars: int | None = None
            ) -> LoadedParts:
    """A side with its decoded image (or media), ready for a scorer; its text cut to ``text_chars``
    characters (``text_limit``), so no tokenizer sees more of it than the scorer's window can use."""
    if side.media is not None:
        return LoadedParts(media=media, media_kind=side.media.kind)
    text = side.text if side.text is None or text_chars is None else bound_text(side.text, text_chars)
    return LoadedParts(text=text, image=image if side.image is not None else None)


def text_limit(scorer: Scorer) -> int:
    """The characters of a query or document text a scorer is given (``text_limits.char_limit`` of the
    window its model or processor declares): a cross-encoder tokenises the query once per document."""
    return char_limit(declared_window(getattr(scorer, "model", None), getattr(scorer, "processor", None)))
