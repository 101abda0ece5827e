"""The base layer's one reading of inputs and nodes: ``Parts``, ``read_node``, ``ImageRef``."""

from __future__ import annotations

import base64
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import Document, ImageDocument, ImageNode, TextNode
from PIL import Image

from llama_index_mm_st.errors import ImageLoadError
from llama_index_mm_st.inputs import (
    Parts,
    image_input,
    image_ref,
    pair_input,
    read_node,
    text_input,
    to_image_node,
)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_parts_modality_and_views() -> None:
    ref = image_ref("/x.png", 0)
    both = Parts(text="cap", image=ref)
    assert (Parts(text="a").modality, Parts(image=ref).modality, both.modality) == ("text", "image", "text+image")
    assert both.view("text") == Parts(text="cap") and both.view("image") == Parts(image=ref) and both.view("text+image") is both


@pytest.mark.parametrize(
    ("make", "modality"),
    [
        (lambda png: TextNode(text="words"), "text"),
        (lambda png: Document(text="words"), "text"),
        (lambda png: ImageNode(image_path=str(png)), "image"),
        (lambda png: ImageNode(image_path=str(png), text="a caption"), "text+image"),
        (lambda png: ImageNode(image_path=str(png), text="   "), "image"),
        (lambda png: ImageNode(image=_b64(png)), "image"),
        (lambda png: ImageDocument(image_path=str(png)), "image"),
        (lambda png: ImageDocument(image_path=str(png), text="a caption"), "text+image"),
        (lambda png: ImageNode(text="an image node without pixels is its words"), "text"),
    ],
)
def test_read_node_gives_one_modality_for_every_component(image_files: dict[str, Path], make, modality: str) -> None:
    assert read_node(make(image_files["png"])).modality == modality


def test_read_node_prefers_inline_data_and_decodes_only_on_load(image_files: dict[str, Path]) -> None:
    png = image_files["png"]
    parts = read_node(ImageNode(image=_b64(png), image_path="/does/not/exist.png"))
    assert parts.image is not None and "inline base64" in parts.image.label
    assert parts.image.load().size == Image.open(png).size
    broken = read_node(ImageNode(id_="n1", image="!!!not base64!!!"))  # reading never fails...
    with pytest.raises(ImageLoadError, match="node n1"):
        broken.image.load()  # ...loading names the node


def test_embed_text_follows_llama_index_embed_mode_and_words_do_not() -> None:
    node = TextNode(text="the words", metadata={"title": "T", "path": "/p"}, excluded_embed_metadata_keys=["path"])
    parts = read_node(node)
    assert parts.words == "the words"
    assert parts.embed_text == "title: T\n\nthe words"
    assert parts.parts() == Parts(text="title: T\n\nthe words")


def test_node_parts_for_the_model(image_files: dict[str, Path]) -> None:
    captioned = read_node(ImageNode(image_path=str(image_files["png"]), text="cap"))
    assert captioned.parts().modality == "image"
    assert captioned.parts(fuse=True) == Parts(text="cap", image=captioned.image)
    assert captioned.text_parts() == Parts(text="cap")
    assert read_node(ImageNode(image_path=str(image_files["png"]))).text_parts() is None


def test_caller_inputs(image_files: dict[str, Path]) -> None:
    png = image_files["png"]
    assert text_input("hello", 0) == Parts(text="hello")
    assert text_input(TextNode(text="hi"), 0) == Parts(text="hi")
    with pytest.raises(TypeError, match="text input at position 3 has type ImageNode"):
        text_input(ImageNode(image_path=str(png)), 3)
    with pytest.raises(TypeError, match="position 1 has type int"):
        image_input(5, 1)
    pair = pair_input({"text": "t", "image": str(png)}, 0)
    assert pair.modality == "text+image" and pair.image.label == str(png)
    with pytest.raises(TypeError, match="got keys"):
        pair_input({"text": "t"}, 0)


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "bytesio", "pil", "array", "data_uri"])
def test_every_image_source_loads_to_the_same_pixels(image_files: dict[str, Path], kind: str) -> None:
    png = image_files["png"]
    reference = np.asarray(Image.open(png).convert("RGB"))
    source = {
        "path": png, "str": str(png), "bytes": png.read_bytes(), "bytesio": BytesIO(png.read_bytes()),
        "pil": Image.open(png), "array": reference, "data_uri": "data:image/png;base64," + _b64(png),
    }[kind]
    np.testing.assert_array_equal(np.asarray(image_ref(source, 0).load()), reference)


def test_bad_sources_are_named(image_files: dict[str, Path]) -> None:
    with pytest.raises(ImageLoadError, match="bytes at position 2: empty data"):
        image_ref(b"", 2).load()
    with pytest.raises(ImageLoadError, match="only base64 data: URIs"):
        image_ref("data:image/png,rawdata", 0)
    with pytest.raises(ImageLoadError, match="array at position 0.*shape"):
        image_ref(np.zeros((2, 2, 7), dtype=np.uint8), 0).load()
    with pytest.raises(ImageLoadError, match="/no/such.png: file not found"):
        image_ref("/no/such.png", 0).load()
    with pytest.raises(ImageLoadError, match="file://"):
        image_ref(f"file://{image_files['png']}", 0).load()  # a URL is never a way to read local files


def test_to_image_node_keeps_what_the_document_had(image_files: dict[str, Path]) -> None:
    document = ImageDocument(image_path=str(image_files["png"]), text="cap", metadata={"k": 1},
                             excluded_embed_metadata_keys=["k"])
    document.embedding = [1.0]
    node = to_image_node(document)
    assert isinstance(node, ImageNode) and node.id_ == document.id_
    assert (node.image_path, node.text, node.embedding, node.metadata) == (str(image_files["png"]), "cap", [1.0], {"k": 1})
    assert node.excluded_embed_metadata_keys == ["k"]
    assert read_node(node).modality == read_node(document).modality == "text+image"


def test_a_long_item_label_is_cut_in_its_middle_and_keeps_its_file_name() -> None:
    from llama_index_mm_st.inline import LABEL_LIMIT, short_label

    path = "/very/long/" + "folder/" * 30 + "photo-0042.jpg"
    label = short_label(path)
    assert len(label) == LABEL_LIMIT and label.startswith("/very/long/") and label.endswith("/photo-0042.jpg")
    assert "..." in label and short_label("/short/photo.jpg") == "/short/photo.jpg"
