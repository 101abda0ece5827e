"""One fetch policy (``fetch.FetchOptions``) for every component: the reader, the embedding and the reranker
hold it as their ``fetch`` field and use it as given (the reranker's byte limit included); the old flat
names keep working; and ``file://`` is refused by one rule (``fetch.url_of``) wherever a source is read."""

from __future__ import annotations

import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalReranker
from llama_index_mm_st.errors import ImageLoadError, ItemError, MediaLoadError
from llama_index_mm_st.fetch import FetchOptions, url_of

POLICY = FetchOptions(allow_urls=True, allow_private_urls=True, timeout=3.0, max_bytes=4000)


class _Images(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def big_image_url(image_files: dict[str, Path]) -> Iterator[str]:
    """A PNG served on 127.0.0.1 that is larger than ``POLICY.max_bytes``."""
    _Images.body = image_files["png"].read_bytes() + bytes(10_000)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/big.png"
    server.shutdown()
    server.server_close()
    thread.join()


def test_every_component_holds_the_one_policy_and_uses_it_as_given(tiny_clip_dir, tiny_blip_itm_dir):
    reader = ImageReader(fetch=POLICY)
    embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="torch", fetch=POLICY)
    reranker = MultimodalReranker(str(tiny_blip_itm_dir), backend="torch", fetch=POLICY)
    assert reader.fetch == embedding.fetch == reranker.fetch == POLICY
    assert reader.read_settings().fetch == POLICY and embedding.fetch_options == POLICY
    assert embedding._encoder.settings.fetch == POLICY  # what the encoder downloads with
    assert ImageReader.from_dict(reader.to_dict()).fetch == POLICY  # serialised as one sub-model


def test_the_old_flat_names_still_work_and_the_inconsistent_ones_say_what_replaces_them(tiny_clip_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the two shorthands are not deprecated
        reader = ImageReader(allow_urls=True, allow_private_urls=True)
    assert reader.fetch == FetchOptions(allow_urls=True, allow_private_urls=True)
    assert (reader.allow_urls, reader.allow_private_urls) == (True, True)
    with pytest.warns(DeprecationWarning, match=r"url_max_bytes=.*fetch=FetchOptions\(max_bytes=...\)"):
        old = ImageReader(url_max_bytes=1234, url_timeout=2.5, allow_urls=True)
    assert old.fetch == FetchOptions(max_bytes=1234, timeout=2.5, allow_urls=True)
    assert (old.url_max_bytes, old.url_timeout) == (1234, 2.5)
    with pytest.warns(DeprecationWarning, match="max_download_bytes"):
        embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="torch", max_download_bytes=999,
                                        fetch={"timeout": 4.0})
    assert embedding.fetch == FetchOptions(max_bytes=999, timeout=4.0) and embedding.max_download_bytes == 999
    with pytest.raises(TypeError, match="did you mean 'allow_urls'"):
        ImageReader(alow_urls=True)
    with pytest.raises(ValueError, match="max_bytes"):
        ImageReader(fetch=FetchOptions(max_bytes=0))


def test_the_reranker_refuses_a_download_over_its_byte_limit(tiny_blip_itm_dir, big_image_url):
    candidates = [NodeWithScore(node=ImageNode(id_="far", image_url=big_image_url), score=1.0)]
    limited = MultimodalReranker(str(tiny_blip_itm_dir), backend="torch", fetch=POLICY)
    with pytest.raises(ImageLoadError, match="over the limit of 4000"):
        limited.postprocess_nodes(candidates, QueryBundle("a red square"))
    roomy = MultimodalReranker(str(tiny_blip_itm_dir), backend="torch",
                               fetch=POLICY.model_copy(update={"max_bytes": 1_000_000}))
    (scored,) = roomy.postprocess_nodes(candidates, QueryBundle("a red square"))
    assert scored.score is not None


@pytest.mark.parametrize("reference", ["file:///etc/hostname", "FILE:/etc/hostname", "file://host/x.png"])
def test_file_urls_are_refused_by_one_rule(reference, image_files):
    with pytest.raises(ImageLoadError, match="file:// URLs are refused; pass the file's path instead"):
        url_of(reference, "item 0")
    with pytest.raises(MediaLoadError, match="file:// URLs are refused; send it"):
        url_of(reference, "item 0", MediaLoadError, instead="send it")
    assert url_of("https://example.com/cat.png", "x") == "https://example.com/cat.png"
    assert url_of(str(image_files["png"]), "x") is None and url_of(b"bytes", "x") is None
    assert url_of(image_files["png"], "x") is None  # a Path is a path, whatever it spells


def test_each_front_end_refuses_a_file_url_with_that_rule(image_files, tmp_path):
    from llama_index_mm_st.inputs import ImageRef
    from llama_index_mm_st.media_refs import MediaRef
    from llama_index_mm_st.remote.wire import image_value, media_value

    file_url = f"file://{image_files['png']}"
    failures = []
    for attempt in (lambda: ImageRef("i", file_url).load(), lambda: MediaRef("audio", "a", file_url).load_audio(16_000),
                    lambda: image_value(ImageRef("i", file_url)), lambda: media_value(MediaRef("audio", "a", file_url))):
        with pytest.raises(ItemError) as caught:
            attempt()
        failures.append(caught.value.reason)
    reader = ImageReader(cache_dir=tmp_path / "cache")
    with pytest.warns(Warning):
        assert reader.load_data(file_url) == []
    failures.append(reader.last_report.failures[0].error.reason)  # type: ignore[union-attr]
    assert all(reason.startswith("file:// URLs are refused; pass the file's path instead") for reason in failures), failures
