"""The embedding's decode threads stop when it is closed or garbage collected (``Encoder.close``)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from llama_index_mm_st import MultimodalEmbedding


def _decode_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("mmst-decode")}


def _all_stopped(threads: set[threading.Thread]) -> bool:
    for thread in threads:
        thread.join(timeout=10)
    return not any(thread.is_alive() for thread in threads)


def test_close_stops_the_decode_threads_and_a_later_call_starts_them_again(tiny_clip_dir: Path,
                                                                          image_files: dict[str, Path]):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="torch", decode_workers=2)
    before = _decode_threads()
    first = embedding.get_image_embedding_batch([image_files["png"], image_files["jpeg"]])
    ours = _decode_threads() - before
    assert ours  # decoding ran on the pool
    embedding.close()
    assert _all_stopped(ours)
    embedding.close()  # twice is fine
    again = embedding.get_image_embedding_batch([image_files["png"], image_files["jpeg"]])
    assert again == first
    restarted = _decode_threads() - before - ours
    assert restarted
    embedding.close()
    assert _all_stopped(restarted)


def test_a_garbage_collected_embedding_stops_its_decode_threads(tiny_clip_dir: Path, image_files: dict[str, Path]):
    before = _decode_threads()
    embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="torch", decode_workers=2)
    embedding.get_image_embedding(image_files["png"])
    ours = _decode_threads() - before
    assert ours
    del embedding
    gc.collect()
    assert _all_stopped(ours)
