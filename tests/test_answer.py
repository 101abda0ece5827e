"""``as_query_engine(llm=<chat LLM>, multimodal=True)``: every retrieved image reaches the LLM as an
image block (with its words for captioned images and PDF pages), text nodes as text; images by path,
PDF page render and URL are loaded by the package's own rules."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, TextNode
from PIL import Image

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalQdrantStore, build_pipeline
from tests.fixtures.documents import write_pdf

CAPTION = "a quokka beside the harbour"
PAGE_TEXT = "Quarterly revenue grew in the third quarter."


class RecordingChatLLM(MockLLM):
    """A chat model (``metadata.is_chat_model``) that records every message it is sent."""

    messages: list = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, context_window=1_000_000, num_output=64)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.messages.extend(messages)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content="an answer"))


@pytest.fixture
def image_server(image_files: dict[str, Path]) -> Iterator[str]:
    body = image_files["png"].read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/remote.png"
    server.shutdown()


def _pixels(block: ImageBlock) -> Image.Image:
    return Image.open(block.resolve_image()).convert("RGB")


# evidence=False: whole images (with evidence, the default, regions go as crops: tests/evidence/test_answer_crops.py)
def test_images_reach_a_chat_llm_as_image_blocks_with_their_words(tiny_clip_dir, image_files, image_server, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    pdf = write_pdf(tmp_path / "report.pdf", [PAGE_TEXT])
    page = ImageReader().load_data(str(pdf))[0]
    page_node = ImageNode(id_="page", text=page.text, image_path=page.image_path, metadata={"file_name": "report.pdf"})
    nodes = {
        "text": TextNode(id_="text", text="Circles are round."),
        "plain": ImageNode(id_="plain", image_path=str(image_files["jpeg"])),
        "captioned": ImageNode(id_="captioned", image_path=str(image_files["bmp"]), text=CAPTION),
        "page": page_node,
        "url": ImageNode(id_="url", image_url=image_server),
    }
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32",
                                    allow_urls=True, allow_private_urls=True)  # the test server is on loopback
    store = MultimodalQdrantStore("answers")
    store.add(embedding(list(nodes.values())))
    llm = RecordingChatLLM()
    engine = build_pipeline(store, embedding, top_k=len(nodes)).as_query_engine(llm=llm, multimodal=True, evidence=False)
    response = engine.query("what grew?")
    store.close()

    assert str(response) == "an answer"
    assert {source.node.node_id for source in response.source_nodes} == set(nodes)
    blocks = [block for message in llm.messages for block in message.blocks]
    images = [block for block in blocks if isinstance(block, ImageBlock)]
    texts = " ".join(block.text for block in blocks if isinstance(block, TextBlock))
    assert len(images) == 4  # plain, captioned, PDF page, URL: each once, as pixels we loaded
    # pixels we loaded (LlamaIndex may carry them as a data: URL), never a path or URL left for it to fetch
    assert all(block.path is None and (block.url is None or str(block.url).startswith("data:image/png;"))
               for block in images)
    sizes = sorted(_pixels(block).size for block in images)
    expected = sorted([Image.open(image_files["jpeg"]).size, Image.open(image_files["bmp"]).size,
                       Image.open(page.image_path).size, Image.open(image_files["png"]).size])
    assert sizes == expected
    assert CAPTION in texts and PAGE_TEXT in texts and "Circles are round." in texts
    # each captioned image's words follow its own image block
    for words in (CAPTION, PAGE_TEXT):
        position = next(i for i, b in enumerate(blocks) if isinstance(b, TextBlock) and words in b.text)
        assert isinstance(blocks[position - 1], ImageBlock)


def test_the_callers_nodes_are_not_changed(tiny_clip_dir, image_files):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    store = MultimodalQdrantStore("answers")
    store.add(embedding([ImageNode(id_="img", image_path=str(image_files["png"]), text=CAPTION)]))
    retriever = build_pipeline(store, embedding, top_k=1)
    engine = retriever.as_query_engine(llm=RecordingChatLLM(), multimodal=True)
    retrieved = retriever.retrieve("x")[0].node
    answered = engine.query("x").source_nodes[0].node
    store.close()
    assert type(retrieved) is ImageNode and isinstance(answered, ImageNode) and answered is not retrieved
    assert answered.node_id == retrieved.node_id and answered.text == CAPTION


def test_an_image_url_follows_the_embeddings_url_opt_in(tiny_clip_dir, image_files, image_server):
    """Without allow_urls on the embedding, the LLM is told the image is not available; nothing is fetched."""
    from llama_index_mm_st.answer import for_answer
    from llama_index_mm_st.fetch import FetchOptions

    node = ImageNode(id_="url", image_url=image_server, text="remote")
    with pytest.warns(RuntimeWarning, match="URL fetching is off"):
        blocks = for_answer(node, FetchOptions()).get_content_blocks()
    assert not any(isinstance(block, ImageBlock) for block in blocks)
    assert any(isinstance(block, TextBlock) and "image not available" in block.text for block in blocks)
    allowed = for_answer(node, FetchOptions(allow_urls=True, allow_private_urls=True)).get_content_blocks()
    assert _pixels(next(b for b in allowed if isinstance(b, ImageBlock))).size == Image.open(image_files["png"]).size
