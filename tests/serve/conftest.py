"""A real uvicorn server on 127.0.0.1, started once per session around the tiny fabricated models.

The server runs in a thread of the test process, around the very component objects the tests compare
against (the tiny CLIP, a BERT cross-encoder plus BLIP, an Edge store of text and images), so "the
same as in-process" is checked against the same weights. Servers with other limits or faulty models
(``running_server``) start the same way, each on its own free port.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from llama_index.core.schema import ImageNode, TextNode  # noqa: E402

API_KEY = "test-key-0f9c"
RARE = "Part QX-7731 is the replacement valve."
TEXTS = [RARE, "Circles are round.", "The sky is blue at noon.", "Squares have four equal sides.",
         "A red circle on a white page."]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".jpg": "image/jpeg"}.get(path.suffix, "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


@contextmanager
def running_server(app: Any, wait_ready: bool = True, timeout: float = 30.0, **options: Any) -> Iterator[str]:
    """Serve ``app`` (from ``create_app``) on a free port in a thread; yields its base URL. ``options``:
    ``make_server``'s (``headers_timeout_s``)."""
    from llama_index_mm_st.serve import make_server

    port = free_port()
    server = make_server(app, "127.0.0.1", port, log_level="warning", **options)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = httpx.get(base + "/health", timeout=2).status_code
            if status == 200 or not wait_ready:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    else:
        raise RuntimeError(f"the server at {base} did not start")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Served:
    base: str
    embedding: Any
    reranker: Any
    store: Any
    nodes: list
    images: dict

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def serve_models(tiny_clip_dir: Path, tiny_bert_cross_encoder_dir: Path, tiny_blip_itm_dir: Path):  # type: ignore[no-untyped-def]
    from llama_index_mm_st import MultimodalEmbedding, MultimodalReranker

    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    reranker = MultimodalReranker([str(tiny_bert_cross_encoder_dir), str(tiny_blip_itm_dir)], top_n=4,
                                  device="cpu", precision="fp32")
    return embedding, reranker


@pytest.fixture(scope="session")
def served(serve_models, image_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    embedding, reranker = serve_models
    store = MultimodalQdrantStore("serve", path=str(tmp_path_factory.mktemp("serve_store") / "index"))
    nodes = [TextNode(id_=f"text-{i}", text=text, metadata={"kind": "note", "n": i}) for i, text in enumerate(TEXTS)]
    nodes += [ImageNode(id_=f"image-{name}", image_path=str(image_files[name]), metadata={"kind": "photo"})
              for name in ("png", "jpeg", "bmp")]
    nodes.append(ImageNode(id_="image-captioned", image_path=str(image_files["webp"]), text="a captioned picture",
                           metadata={"kind": "photo"}))
    store.add(embedding(nodes))
    app = create_app(Components(embedding, reranker, store), ServeSettings(api_key=API_KEY))
    with running_server(app) as base:
        yield Served(base, embedding, reranker, store, nodes, image_files)
    store.close()
