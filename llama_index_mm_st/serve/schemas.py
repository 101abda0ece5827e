"""Request bodies, in the shapes existing clients send (read from their source; see NOTES.md).

Unknown fields are refused (422 naming them), as a misspelt keyword is everywhere in this package: a
client that sends ``top_k`` where ``top_n`` is meant should hear about it, not get ten results.
Numbers are checked here, where the field is named: no float may be NaN or infinite, ``rrf_k`` is at
most ``MAX_RRF_K``, weights are at least 0. ``top_k``/``top_n`` are bounded by the server's
``Limits.max_top_k`` (default 1000), checked by the route since it is a setting.
"""

from __future__ import annotations

from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..defaults import DEFAULT_DOCUMENT_KEY
from ..pipeline import MAX_RRF_K  # the search step's own bound, checked here where the field is named

ServedModality = Literal["text", "image", "audio", "video"]
InputType = Literal["query", "document"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class EmbeddingsRequest(_Body):
    """OpenAI's ``/v1/embeddings`` plus Infinity's ``modality`` (media as data: URIs or allowed URLs) and
    ``input_type`` (the role: ``query`` uses the model's query prompt; default ``document``)."""

    input: Union[str, List[str]]
    model: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = Field(default=None, ge=1)
    modality: ServedModality = "text"
    input_type: InputType = "document"
    user: Optional[str] = None


class TEIEmbedRequest(_Body):
    """text-embeddings-inference's ``/embed``: a bare list of vectors comes back. Texts are always cut to
    the model's window (``truncate`` is accepted for TEI's clients, which send it)."""

    inputs: Union[str, List[str]]
    truncate: bool = True
    normalize: bool = True
    prompt_name: Optional[InputType] = None
    dimensions: Optional[int] = Field(default=None, ge=1)


RerankSide = Union[str, Dict[str, Any]]


class RerankRequest(_Body):
    """Cohere's and Jina's ``/v1/rerank``: documents (and the query) are strings or ``{"text"}`` /
    ``{"image"}`` objects; results come back best first, ``top_n`` of them (default all)."""

    query: RerankSide
    documents: List[RerankSide]
    top_n: Optional[int] = Field(default=None, ge=1, description="at most the server's Limits.max_top_k (default 1000)")
    return_documents: bool = False
    model: Optional[str] = None
    unscored: Literal["error", "keep"] = "error"
    """A document no loaded reranker reads (an image, with a text cross-encoder only): a 400 naming it, or
    ``keep``: left at its position with ``relevance_score: null`` (what ``RemoteReranker`` asks for)."""


class TEIRerankRequest(_Body):
    """text-embeddings-inference's ``/rerank``: ``query`` and ``texts``; a bare list of ``{index, score}``."""

    query: str
    texts: List[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = True


class SearchRequest(_Body):
    """Our ``/v1/search``: text and/or one example (a data: URI), with the CLI's options."""

    query: Optional[str] = None
    image: Optional[str] = None
    audio: Optional[str] = None
    video: Optional[str] = None
    top_k: int = Field(default=10, ge=1, description="at most the server's Limits.max_top_k (default 1000)")
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    modality: Optional[ServedModality] = None
    filters: Optional[Dict[str, Any]] = None
    rerank: bool = False
    # The search-quality options of ``build_pipeline`` (``mmst search --mmr/--max-per-document/--fusion/...``).
    mmr: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    max_per_document: Optional[int] = Field(default=None, ge=1)
    document_key: str = DEFAULT_DOCUMENT_KEY
    fusion: Optional[Literal["relevance", "rrf", "dbsf"]] = None
    rrf_k: Optional[int] = Field(default=None, ge=1, le=MAX_RRF_K)
    rrf_weights: Optional[Dict[str, Weight]] = None
    min_relevance: Optional[float] = Field(default=None, ge=0.0, le=1.0)
    evidence: bool = False
    """Each result also carries where it matched (``"evidence"``: regions, spans, passages), as ``mmst
    search --evidence --json`` prints it."""
