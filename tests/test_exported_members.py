"""The public API is exactly what ``__all__`` lists, and every name in it exists."""

from __future__ import annotations

import llama_index_mm_st

EXPECTED = {
    "Backend",
    "EmbeddingResult",
    "ImageReader",
    "MediaReader",
    "VideoFrameSampler",
    "MediaLoadError",
    "MultimodalQdrantStore",
    "MultimodalReranker",
    "MultimodalRetriever",
    "ReadReport",
    "RerankedNode",
    "UnsupportedFilterError",
    "build_pipeline",
    "evaluate",
    "load_qrels",
    "CaptionFileError",
    "EncodeError",
    "ImageLoadError",
    "ItemError",
    "ItemFailure",
    "MMSTError",
    "MissingDependencyError",
    "ModelUnavailableError",
    "Modality",
    "MultimodalEmbedding",
    "SchemaMismatchError",
    "SkippedItemsWarning",
    "StoreLockedError",
    "DiskFullError",
    "UnfinishedStoreError",
    "UnscoredNodesWarning",
    "UnsupportedModalityError",
    "UnsupportedIndexError",
    "__version__",
    "PooledVector",
    "attach_multivector",
    "node_multivector",
    "RemoteMultimodalEmbedding",
    "RemoteMultimodalStore",
    "RemoteReranker",
    "RemoteServerError",
    "EvidenceLocator",
    "Passage",
    "Region",
    "Span",
    "find_evidence",
    "node_evidence",
}


def test_public_api_is_frozen():
    assert set(llama_index_mm_st.__all__) == EXPECTED
    for name in llama_index_mm_st.__all__:
        assert hasattr(llama_index_mm_st, name), name


def test_public_classes_follow_llama_index_conventions():
    m = llama_index_mm_st
    assert m.MultimodalEmbedding.class_name() == "MultimodalEmbedding"
    assert m.MultimodalQdrantStore.class_name() == "MultimodalQdrantStore"
    assert m.MultimodalReranker.class_name() == "MultimodalReranker"
    assert m.ImageReader.class_name()
    assert m.MediaReader.class_name() == "MediaReader"
    assert m.VideoFrameSampler.class_name() == "VideoFrameSampler"
    assert m.RemoteMultimodalEmbedding.class_name() == "RemoteMultimodalEmbedding"
    assert m.RemoteReranker.class_name() == "RemoteReranker"
    assert m.RemoteMultimodalStore.class_name() == "RemoteMultimodalStore"


def test_store_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys; from llama_index_mm_st import MultimodalQdrantStore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_remote_clients_and_the_pipeline_do_not_load_torch():
    """A CPU app server that calls a GPU box builds its pipeline without torch."""
    import subprocess
    import sys

    code = ("import sys; from llama_index_mm_st import RemoteMultimodalEmbedding, RemoteReranker, build_pipeline, "
            "MultimodalQdrantStore; RemoteMultimodalEmbedding('http://127.0.0.1:9'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_error_tree():
    e = llama_index_mm_st
    assert issubclass(e.ImageLoadError, e.MMSTError) and issubclass(e.ImageLoadError, ValueError)
    assert issubclass(e.MediaLoadError, e.ItemError) and issubclass(e.MediaLoadError, ValueError)
    assert issubclass(e.UnsupportedModalityError, ValueError)
    assert issubclass(e.MissingDependencyError, ImportError)
    error = e.ImageLoadError("photo.jpg", "file not found")
    assert str(error) == "cannot load image photo.jpg: file not found"
    assert (error.item, error.reason) == ("photo.jpg", "file not found")
    caption = e.CaptionFileError("captions.json", "invalid JSON")
    assert isinstance(caption, e.ItemError) and isinstance(error, e.ItemError)
    assert str(caption) == "cannot read caption file captions.json: invalid JSON"
    assert issubclass(e.UnsupportedFilterError, e.MMSTError) and issubclass(e.UnsupportedFilterError, ValueError)
