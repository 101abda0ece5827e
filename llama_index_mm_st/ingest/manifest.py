"""What a store was built with: the model id and the vector size, recorded with the collection when its
first point is written, and checked before every index or search (by the CLI, Ray and the server)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..errors import SchemaMismatchError

if TYPE_CHECKING:  # importing the store costs seconds; the CLI reads the manifest before it needs it
    from ..store import MultimodalQdrantStore

MODEL_KEY = "mmst_model"
DIM_KEY = "mmst_dim"


@dataclass(frozen=True)
class Manifest:
    model: str
    dim: int


def read_manifest(store: "MultimodalQdrantStore") -> Optional[Manifest]:
    """The manifest, or None for a store that has none yet."""
    metadata = store.get_metadata()
    if MODEL_KEY not in metadata:
        return None
    return Manifest(model=str(metadata[MODEL_KEY]), dim=int(metadata[DIM_KEY]))


def check_model(manifest: Optional[Manifest], model: Optional[str]) -> None:
    """A different model than the store was built with is an error, never a silent mix of spaces."""
    if manifest is not None and model is not None and model != manifest.model:
        raise SchemaMismatchError(
            f"this index was built with model {manifest.model!r} (dimension {manifest.dim}); "
            f"{model!r} would give incompatible vectors. Use --model {manifest.model} or a new --store."
        )


def write_manifest(store: "MultimodalQdrantStore", model: str, dim: int) -> None:
    store.update_metadata({MODEL_KEY: model, DIM_KEY: dim})
