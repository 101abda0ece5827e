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

DEFAULT_MAX_VIDEO_DECODED_BYTES = 4 * 1024**3
"""Most bytes of RGB frames one video load decodes (checked from the header before decoding, and
again frame by frame): 690 frames of 1080p, 172 of 4K. Frames the model doesn't sample are decoded
but never kept, so this bounds what a video model's frame sampler can ask for."""

DEFAULT_URL_TIMEOUT_S = 10.0
"""Seconds a whole download may take (connect, redirects and body), when URLs are allowed."""

DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
"""Largest download accepted, declared and actual."""

DEFAULT_OVERSAMPLING: dict[str, float] = {"int8": 2.0, "binary": 4.0}
"""Candidates a quantized store draws by its compressed vectors per result, before rescoring by the
originals. It also widens the graph search: at 100k points recall@10 was 0.953 (int8, 1x) and 0.896
(binary, 3x), the float32 graph alone 0.962."""

DEFAULT_HNSW_EF = 128
"""The store's graph search width per dense branch. Measured at 100k clustered 512-d points
(docs/store.md): the engine's own width gives recall@10 0.962 (float32 and int8 alike); 128 gives 0.981
and 0.979, for under 1 ms more at p50."""

RERANK_CANDIDATES_PER_RESULT = 3
"""With a reranker, a search retrieves this many candidates per result it returns, so the reranker has a
real choice to make (``mmst search --rerank`` and the server's ``/v1/search`` with ``rerank``)."""

DEFAULT_DOCUMENT_KEY = "file_path"
"""What "one document" means to ``max_per_document`` in ``mmst search``, ``mmst eval`` and the server's
``/v1/search``: a source file (a PDF's pages, a video's frames and a text file's chunks are one document
each); a node without a file falls back to its ``ref_doc_id``."""
