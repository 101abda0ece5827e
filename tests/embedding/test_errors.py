"""Bad input: clear errors that name the item; skip mode reports exactly the bad items."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from PIL import Image

from llama_index_mm_st import errors
from llama_index_mm_st.embedding import MultimodalEmbedding


@pytest.mark.parametrize("kind", ["truncated", "zero_byte", "not_image", "missing"])
def test_bad_image_raises_image_load_error_naming_the_file(clip_embedding, broken_images, kind):
    path = broken_images[kind]
    with pytest.raises(errors.ImageLoadError) as info:
        clip_embedding.get_image_embedding(str(path))
    assert str(path) in str(info.value)
    assert info.value.item == str(path) and info.value.reason


def test_anonymous_inputs_are_named_by_position(clip_embedding, image_files):
    with pytest.raises(errors.ImageLoadError, match="position 1"):
        clip_embedding.get_image_embedding_batch([image_files["png"], b"not an image"])


def test_oversized_image_is_refused_before_decoding(tiny_clip_dir, fixture_root):
    path = fixture_root / "big.png"
    Image.new("RGB", (400, 300)).save(path)
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", max_pixels=100_000)
    with pytest.raises(errors.ImageLoadError, match="over the limit"):
        embedding.get_image_embedding(path)


def test_skip_mode_embeds_good_items_and_reports_bad_positions(clip_embedding, image_files, broken_images):
    inputs = [image_files["png"], broken_images["truncated"], image_files["jpeg"], broken_images["missing"],
              image_files["webp"]]
    result = clip_embedding.embed(inputs, "image", on_error="skip")
    assert [f.position for f in result.failures] == [1, 3]
    assert all(isinstance(f.error, errors.ImageLoadError) for f in result.failures)
    assert [v is None for v in result.embeddings] == [False, True, False, True, False]
    np.testing.assert_allclose(result.embeddings[2], clip_embedding.get_image_embedding(image_files["jpeg"]), atol=1e-5)
    with pytest.warns(errors.SkippedItemsWarning) as record:
        vectors = clip_embedding.get_image_embedding_batch(inputs, on_error="skip")
    assert len(vectors) == 3
    assert [f.position for f in record[0].message.failures] == [1, 3]
    assert str(broken_images["truncated"]) in str(record[0].message)


def test_node_transformation_skip_mode_keeps_good_nodes_and_warns(clip_embedding, image_files, broken_images):
    bad = ImageNode(image_path=str(broken_images["not_image"]))
    nodes = [TextNode(text="words"), bad, ImageNode(image_path=str(image_files["png"]))]
    with pytest.raises(errors.ImageLoadError):
        clip_embedding(nodes)
    with pytest.warns(errors.SkippedItemsWarning, match=bad.node_id):
        kept = clip_embedding(nodes, on_error="skip")
    assert [n.node_id for n in kept] == [nodes[0].node_id, nodes[2].node_id]
    assert bad.embedding is None


@pytest.mark.parametrize("bad", [42, 3.5, object(), ["nested"]])
def test_wrong_image_types_get_a_type_error_listing_accepted_types(clip_embedding, bad):
    with pytest.raises(TypeError, match="accepted"):
        clip_embedding.get_image_embedding_batch([bad])


def test_wrong_text_types_and_arguments(clip_embedding, image_files):
    with pytest.raises(TypeError, match="accepted"):
        clip_embedding.embed([b"bytes are not text"], "text")
    with pytest.raises(TypeError):
        clip_embedding.embed("a string, not a list", "text")
    with pytest.raises(ValueError, match="on_error"):
        clip_embedding.embed(["x"], "text", on_error="ignore")
    with pytest.raises(ValueError, match="modality"):
        clip_embedding.embed(["x"], "smell")  # type: ignore[arg-type]
    with pytest.raises(errors.UnsupportedModalityError, match="cannot encode 'audio'"):
        clip_embedding.embed(["x.wav"], "audio")
    with pytest.raises(TypeError, match="text"):
        clip_embedding.embed([{"image": image_files["png"]}], "text+image")


def test_pairs_need_a_model_that_fuses(clip_embedding, image_files):
    with pytest.raises(errors.UnsupportedModalityError, match="text\\+image"):
        clip_embedding.get_text_image_embedding("caption", image_files["png"])


def test_image_node_without_any_image_is_named(clip_embedding):
    node = ImageNode(text="only words")
    with pytest.raises(errors.ImageLoadError, match=node.node_id):
        clip_embedding.get_image_embedding(node)


def test_ready_model_of_wrong_type_is_refused():
    with pytest.raises(TypeError, match="SentenceTransformer"):
        MultimodalEmbedding(model=object())  # type: ignore[arg-type]


def test_warnings_name_no_unclosed_files(clip_embedding, image_files):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        clip_embedding.get_image_embedding_batch(list(image_files.values()))
