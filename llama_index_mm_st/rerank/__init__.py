"""Reranking of mixed text and image candidates: ``MultimodalReranker`` and its scorers."""

from .fusion import DEFAULT_RRF_K
from .reranker import MultimodalReranker, RerankedNode
from .scorers.base import LoadedParts, Scorer
from .scorers.cross_encoder import CrossEncoderScorer
from .scorers.itm import BlipITMScorer
from .loading import SCORER_BY_ARCHITECTURE, LoadOptions

__all__ = [
    "BlipITMScorer",
    "LoadedParts",
    "CrossEncoderScorer",
    "DEFAULT_RRF_K",
    "LoadOptions",
    "MultimodalReranker",
    "RerankedNode",
    "SCORER_BY_ARCHITECTURE",
    "Scorer",
]
