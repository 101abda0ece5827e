"""URL reading against a local HTTP server on 127.0.0.1 (a private address, so every reader here opts in
with ``allow_private_urls=True``): good image, timeout, size limit, scheme redirect."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from llama_index_mm_st.errors import ImageLoadError, SkippedItemsWarning


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow.png":
            time.sleep(1.5)
        if self.path in ("/to-file", "/to-ftp"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd" if self.path == "/to-file" else "ftp://127.0.0.1/x.png")
            self.end_headers()
            return
        if self.path == "/to-http":
            self.send_response(302)
            self.send_header("Location", "/cat.png")
            self.end_headers()
            return
        body = self.routes.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(image_files: dict[str, Path]) -> Iterator[str]:
    png = image_files["png"].read_bytes()
    _Handler.routes = {"/cat.png": png, "/slow.png": png, "/big.png": png + bytes(200_000), "/bad.png": b"<html>"}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_url_becomes_a_document_with_its_url_and_a_cached_copy(
    make_reader, server: str, image_files, cache_dir: Path
) -> None:
    url = f"{server}/cat.png?size=small"
    reader = make_reader(allow_urls=True, allow_private_urls=True)
    (doc,) = reader.load_data(url)
    assert doc.image_url == url and doc.metadata["url"] == url and doc.metadata["source_id"] == url
    assert doc.metadata["file_name"] == "cat.png"
    assert Path(doc.image_path).is_relative_to(cache_dir)
    assert Path(doc.image_path).read_bytes() == image_files["png"].read_bytes()
    (again,) = reader.load_data(url)
    assert again.id_ == doc.id_


def test_http_redirects_are_followed(make_reader, server: str) -> None:
    (doc,) = make_reader(allow_urls=True, allow_private_urls=True).load_data(f"{server}/to-http")
    assert doc.metadata["width"] == 64


@pytest.mark.parametrize(
    "path, options, reason",
    [
        ("/slow.png", {"url_timeout": 0.3}, "deadline of 0.3 s"),
        ("/big.png", {"url_max_bytes": 100_000}, "over the limit of 100000"),
        ("/to-file", {}, "HTTP error 302"),
        ("/to-ftp", {}, "redirect to a ftp: URL refused"),
        ("/missing.png", {}, "404"),
        ("/bad.png", {}, "not a recognised image format"),
    ],
)
def test_bad_urls_are_reported_and_good_ones_still_load(
    make_reader, server: str, path: str, options: dict, reason: str
) -> None:
    reader = make_reader(allow_urls=True, allow_private_urls=True, **options)
    started = time.perf_counter()
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data([f"{server}{path}", f"{server}/cat.png"])
    assert time.perf_counter() - started < 5
    assert [d.image_url for d in docs] == [f"{server}/cat.png"]
    (failure,) = reader.last_report.failures
    assert failure.item == f"{server}{path}" and reason in str(failure.error)


def test_strict_mode_names_the_url(make_reader, server: str) -> None:
    with pytest.raises(ImageLoadError, match="302") as raised:
        make_reader(allow_urls=True, allow_private_urls=True, on_error="raise").load_data(f"{server}/to-file")
    assert raised.value.item == f"{server}/to-file"
