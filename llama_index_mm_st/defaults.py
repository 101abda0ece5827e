"""The package's defaults, in one place: the library, the CLI, Ray and the server all read these.

A default written twice drifts (the CLI once kept its own copy of the model id). This module is
pure constants and imports nothing, so ``mmst --help`` can read it without loading torch.
"""

from __future__ import annotations

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
"""The embedding model when none is named: CLIP ViT-B/32 reads text and images, and runs on a CPU."""

DEFAULT_COLLECTION = "mmst"
"""The collection name of a store (an Edge store keeps it as a sub-folder of its path)."""

DEFAULT_STORE_DIR = "./mmst_index"
"""Where ``mmst`` keeps its embedded (Edge) index unless ``--store`` or ``--url`` says otherwise."""

DEFAULT_RRF_K = 60
"""RRF's k, pinned everywhere (qdrant-client's local mode would default to 2): the store's fusion of
its ranked lists and the reranker's fusion of several scorers use the same constant."""

DEFAULT_MAX_PIXELS = 89_478_485
"""Largest image (and rendered PDF page, and video frame) accepted: Pillow's own decompression-bomb limit."""

DEFAULT_MAX_MEDIA_SECONDS = 3600.0
"""Longest audio or video accepted, read from the header before anything is decoded."""

DEFAULT_MAX_MEDIA_BYTES = 2 * 1024**3
"""Largest audio or video file accepted."""

DEFAULT_URL_TIMEOUT_S = 10.0
"""Seconds a whole download may take (connect, redirects and body), when URLs are allowed."""

DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
"""Largest download accepted, declared and actual."""

RERANK_CANDIDATES_PER_RESULT = 3
"""With a reranker, a search retrieves this many candidates per result it returns, so the reranker has a
real choice to make (``mmst search --rerank`` and the server's ``/v1/search`` with ``rerank``)."""
