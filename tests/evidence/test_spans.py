"""Spans of audio and video: a clip pasted into a longer recording, and a picture shown in a video
between two times, are found within one step."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index_mm_st.evidence import EvidenceQuery, EvidenceSettings, Span, WindowSettings, find_evidence
from llama_index_mm_st.evidence.spans import coarse_windows, frame_span, search_spans
from llama_index_mm_st.inputs import MediaQueryBundle, read_query
from tests.fixtures.evidence import recording_with_clip, video_with_query
from tests.fixtures.images import synthetic_image

pytest.importorskip("av")


def test_coarse_windows_cover_the_recording():
    windows = coarse_windows(10.0, 2.0, 24)
    assert windows[0] == (0.0, 2.0) and windows[-1] == (8.0, 10.0)
    assert all(b - a == pytest.approx(2.0) for a, b in windows)
    assert [a for a, _ in windows] == pytest.approx([i * 1.0 for i in range(9)])
    spread = coarse_windows(3600.0, 10.0, 24)
    assert len(spread) == 24 and spread[-1][1] == 3600.0
    assert coarse_windows(1.5, 2.0, 24) == [(0.0, 1.5)]


def test_window_search_finds_a_planted_moment():
    """Windows scored by a stand-in model: a window's vector is the share of it that overlaps [4.2, 6.2]."""
    target = (4.2, 6.2)
    query = np.array([1.0, 0.0])

    def vector(window):
        overlap = max(0.0, min(window[1], target[1]) - max(window[0], target[0])) / (window[1] - window[0])
        return [overlap, 1.0 - overlap]

    search = search_spans(20.0, 2.0, query, WindowSettings(min_step_s=0.1))
    try:
        windows = next(search)
        while True:
            windows = search.send(np.array([vector(w) for w in windows]))
    except StopIteration as done:
        spans = done.value
    start, end, score = spans[0]
    assert abs(start - target[0]) <= 0.1 and abs(end - target[1]) <= 0.1 and score > 0.99


def test_frame_span_ends_halfway_to_the_neighbours():
    times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    scores = [0.1, 0.15, 0.9, 0.95, 0.92, 0.1, 0.12]
    assert frame_span(times, scores, 3) == pytest.approx((1.5, 4.5, 0.95))
    assert frame_span(times, [0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1], 0)[:2] == pytest.approx((0.0, 1.5))


def test_an_audio_clip_pasted_into_a_longer_recording(clap, tmp_path):
    from llama_index_mm_st import MediaReader
    from tests.fixtures import media

    rate = media.RATE
    clip = media.chirp(seconds=2.0)
    at = 5.0
    media.write_audio(tmp_path / "query.wav", clip)
    media.write_audio(tmp_path / "long.wav", recording_with_clip(clip, rate, 12.0, at))
    documents = MediaReader().load_data([tmp_path / "long.wav"])
    hits = [NodeWithScore(node=documents[0], score=1.0)]
    query = MediaQueryBundle(query_str="", media=str(tmp_path / "query.wav"), media_kind="audio")
    found = find_evidence(hits, clap, EvidenceQuery(read_query(query)))
    spans = [item for item in found[0] if isinstance(item, Span)]
    step = WindowSettings().min_step_s
    assert abs(spans[0].start_s - at) <= step and abs(spans[0].end_s - (at + 2.0)) <= step


@pytest.fixture(scope="module")
def frame_store(tmp_path_factory, clip):
    """A video showing a picture between 2.0 s and 4.5 s, indexed as frames every 0.5 s, in a store."""
    from llama_index_mm_st import MediaReader, MultimodalQdrantStore
    from llama_index_mm_st.readers.frames import VideoFrameSampler

    folder = tmp_path_factory.mktemp("video")
    picture = synthetic_image(77, (64, 48))
    picture.save(folder / "query.png")
    video_with_query(folder / "talk.mp4", picture, seconds=7.0, shown=(2.0, 4.5))
    documents = MediaReader().load_data([folder / "talk.mp4"])
    frames = VideoFrameSampler(every_s=0.5)(documents)
    store = MultimodalQdrantStore("frames")
    store.add(clip(frames))
    yield store, folder
    store.close()


def test_a_picture_shown_between_two_times_is_a_span_of_frames(frame_store, clip):
    from llama_index_mm_st import build_pipeline

    store, folder = frame_store
    bundle = QueryBundle(query_str="", image_path=str(folder / "query.png"))
    hits = build_pipeline(store, clip, top_k=3, mode="dense").retrieve(bundle)
    found = find_evidence(hits[:1], clip, EvidenceQuery(read_query(bundle)), store=store)
    spans = [item for item in found[0] if isinstance(item, Span)]
    assert len(spans) == 1
    assert abs(spans[0].start_s - 2.0) <= 0.5 and abs(spans[0].end_s - 4.5) <= 0.5  # within one frame step
    regions = [item for item in found[0] if item.kind == "region"]
    assert regions and regions[0].page is None


def test_without_a_store_frame_hits_of_one_video_merge(frame_store, clip):
    from llama_index_mm_st import build_pipeline

    store, folder = frame_store
    bundle = QueryBundle(query_str="", image_path=str(folder / "query.png"))
    hits = build_pipeline(store, clip, top_k=5, mode="dense").retrieve(bundle)
    times = sorted(hit.node.metadata["frame_time_s"] for hit in hits)
    found = find_evidence(hits, clip, EvidenceQuery(read_query(bundle)))
    span = next(item for item in found[0] if isinstance(item, Span))
    assert span.start_s <= hits[0].node.metadata["frame_time_s"] <= span.end_s
    assert span.start_s >= min(times) - 0.5 and span.end_s <= max(times) + 0.5


def test_a_clip_inside_a_video_embedded_whole(tiny_qwen3_vl_embedder_dir, tmp_path):
    """A whole-video model (Qwen3-VL embedder): a 3 s clip placed at 3 s of an 8 s video is the span, within one
    decoded frame (0.5 s), for a search by that clip; a text query's windows stay inside the video."""
    from llama_index_mm_st import MediaReader, MultimodalEmbedding
    from tests.fixtures import media

    qwen = MultimodalEmbedding(str(tiny_qwen3_vl_embedder_dir), device="cpu", precision="fp32")
    fps = 10
    clip = media.video_frames(seconds=3.0, fps=fps, seed=21)
    long = media.video_frames(seconds=8.0, fps=fps, seed=22)
    long[3 * fps:6 * fps] = clip
    media.write_video(tmp_path / "clip.mp4", clip, fps=fps)
    media.write_video(tmp_path / "long.mp4", long, fps=fps)
    documents = MediaReader().load_data([tmp_path / "long.mp4"])
    query = MediaQueryBundle(query_str="", media=str(tmp_path / "clip.mp4"), media_kind="video")
    found = find_evidence([NodeWithScore(node=documents[0], score=1.0)], qwen, EvidenceQuery(read_query(query)))
    spans = [item for item in found[0] if isinstance(item, Span)]
    assert abs(spans[0].start_s - 3.0) <= 0.5 and abs(spans[0].end_s - 6.0) <= 0.5
    few = EvidenceSettings(video_window_s=4.0, windows=WindowSettings(max_windows=3, min_step_s=1.0, beam=1))
    words = find_evidence([NodeWithScore(node=documents[0], score=1.0)], qwen,
                          EvidenceQuery(read_query(QueryBundle(query_str="a moving square"))), few)
    spans = [item for item in words[0] if isinstance(item, Span)]
    assert spans and all(0 <= s.start_s < s.end_s <= 8.0 + 1e-6 for s in spans)
