"""llama-index-mm-st: multimodal retrieval for LlamaIndex.

Public API: the components, their result and config types, and the errors.
"""

from .embedding import EmbeddingResult, MultimodalEmbedding
from .errors import (
    ImageLoadError,
    ItemFailure,
    MissingDependencyError,
    MMSTError,
    SchemaMismatchError,
    SkippedItemsWarning,
    StoreLockedError,
    UnsupportedModalityError,
)
from .types import Modality

__version__ = "0.1.0"

__all__ = [
    "EmbeddingResult",
    "ImageLoadError",
    "ItemFailure",
    "MMSTError",
    "MissingDependencyError",
    "Modality",
    "MultimodalEmbedding",
    "SchemaMismatchError",
    "SkippedItemsWarning",
    "StoreLockedError",
    "UnsupportedModalityError",
    "__version__",
]
