"""Items the model itself can't take: long texts are truncated to the window, and an item the
processor or model refuses is named and skipped while the rest of its batch is encoded."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoTokenizer

from llama_index_mm_st import errors
from llama_index_mm_st.embedding import MultimodalEmbedding

LONG_TEXT = " ".join(f"word{i % 50} and more" for i in range(400))


@pytest.fixture(scope="module")
def clip_without_declared_limit(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLIP saved as many hub checkpoints are: a tokenizer that declares no length limit."""
    target = tmp_path_factory.mktemp("no_limit") / "clip"
    shutil.copytree(tiny_clip_dir, target)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("model_max_length", None)
    config_path.write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(target).model_max_length > 10**20
    return target


def test_long_text_is_truncated_to_the_text_tower_window(clip_without_declared_limit: Path, tiny_clip_dir: Path) -> None:
    embedding = MultimodalEmbedding(str(clip_without_declared_limit), device="cpu", precision="fp32")
    vector = embedding.get_text_embedding(LONG_TEXT)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    ids = tokenizer(LONG_TEXT, truncation=True, max_length=77)["input_ids"]
    truncated = tokenizer.decode(ids, skip_special_tokens=True)
    reference = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    np.testing.assert_allclose(vector, reference.get_text_embedding(truncated), atol=1e-4)
    np.testing.assert_allclose(vector, reference.get_text_embedding(LONG_TEXT), atol=1e-5)


def test_an_item_the_processor_refuses_is_named_and_its_batch_neighbours_encoded(
    qwen_embedding: MultimodalEmbedding, image_files: dict[str, Path], tmp_path: Path
) -> None:
    """Qwen-VL processors refuse an aspect ratio over 200; the image beside it still gets its vector."""
    sliver = tmp_path / "sliver.png"
    Image.new("RGB", (2000, 4), "white").save(sliver)
    inputs = [str(image_files["png"]), str(sliver), str(image_files["jpeg"])]
    result = qwen_embedding.embed(inputs, "image", on_error="skip")
    assert [f.position for f in result.failures] == [1]
    failure = result.failures[0]
    # named by its path (a long one cut in its middle, so the file name stays)
    assert isinstance(failure.error, errors.EncodeError) and "sliver.png: the model cannot take it" in str(failure.error)
    assert str(failure.error).startswith(f"cannot encode {str(sliver)[:20]}")
    expected = qwen_embedding.get_image_embedding_batch([str(image_files["png"]), str(image_files["jpeg"])])
    np.testing.assert_allclose([result.embeddings[0], result.embeddings[2]], expected, atol=1e-4)
    with pytest.raises(errors.EncodeError, match="sliver.png: the model cannot take it"):
        qwen_embedding.embed(inputs, "image")


def test_node_transformation_skips_an_unencodable_node(qwen_embedding: MultimodalEmbedding,
                                                       image_files: dict[str, Path], tmp_path: Path) -> None:
    from llama_index.core.schema import ImageNode, TextNode

    sliver = tmp_path / "sliver.png"
    Image.new("RGB", (4, 2000), "white").save(sliver)
    nodes = [TextNode(text="words"), ImageNode(image_path=str(sliver)), ImageNode(image_path=str(image_files["png"]))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = qwen_embedding(nodes, on_error="skip")
    assert [n.node_id for n in kept] == [nodes[0].node_id, nodes[2].node_id]
    skipped = [w.message for w in caught if isinstance(w.message, errors.SkippedItemsWarning)]
    assert len(skipped) == 1 and nodes[1].node_id in str(skipped[0])
