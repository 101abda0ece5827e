"""Scale-out ingestion on Ray Data (``pip install "llama-index-mm-st[ray]"``).

``ray_index(paths, store, embedding, RayOptions(...))`` runs the ingestion job (``ingest``) on a local
Ray instance or the cluster at ``RAY_ADDRESS``: the same per-file and per-document steps, ids, vectors,
resume rule and summary as ``ingest.Indexer``. Importing this package does not import Ray; running a
job without it raises ``MissingDependencyError``.
"""

from .job import RayOptions, ray_index

__all__ = ["RayOptions", "ray_index"]
