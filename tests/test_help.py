"""``help()`` on the public components shows what every parameter means (pydantic hides field
descriptions from it and puts its generic "Create a new model by parsing..." text on ``__init__``)."""

from __future__ import annotations

import inspect
import pydoc

import pytest

from llama_index_mm_st import (
    ImageReader,
    MediaReader,
    MultimodalEmbedding,
    MultimodalQdrantStore,
    MultimodalReranker,
    VideoFrameSampler,
    build_pipeline,
)
from llama_index_mm_st.docs import INHERITED

CLASSES = [MultimodalEmbedding, MultimodalReranker, ImageReader, MultimodalQdrantStore, MediaReader,
           VideoFrameSampler]


def rendered(obj: object) -> str:
    return " ".join(pydoc.render_doc(obj, renderer=pydoc.plaintext).replace("|", " ").split())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_help_shows_every_parameter_with_its_meaning(cls):
    text = rendered(cls)
    assert "Create a new model by parsing" not in text
    for name, field in cls.model_fields.items():
        if field.exclude:
            continue
        description = field.description or INHERITED.get(name)
        assert description, f"{cls.__name__}.{name} has no description"
        assert f"{name} :" in text and " ".join(description.split()) in text, name
    init_only = [p for p in inspect.signature(cls.__init__).parameters.values()
                 if p.name != "self" and p.kind is not p.VAR_KEYWORD and p.name not in cls.model_fields]
    doc_lines = cls.__doc__.splitlines()
    for parameter in init_only:  # a line with the name, then an indented description
        position = doc_lines.index(parameter.name)
        assert doc_lines[position + 1].startswith("    ") and doc_lines[position + 1].strip(), parameter.name
    assert "Parameters ----------" in " ".join(rendered(cls.__init__).split())


def test_constructor_only_arguments_are_described():
    text = rendered(MultimodalQdrantStore)
    assert "api_key Qdrant server API key" in text and "client A ready QdrantClient" in text
    assert "model A loaded SentenceTransformer" in rendered(MultimodalEmbedding)


def test_image_reader_still_builds_from_keywords():
    reader = ImageReader(recursive=False, pdf_dpi=72)
    assert reader.recursive is False and reader.pdf_dpi == 72
    with pytest.raises(ValueError):
        ImageReader(pdf_dpi=0)


def test_build_pipeline_help_names_its_options():
    text = rendered(build_pipeline)
    for option in ("store", "embedding", "reranker", "top_k", "mode", "modality", "filters"):
        assert f"{option}" in text
    assert "sparse: exact words only" in text
