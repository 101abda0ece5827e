"""``--crops``: each region written as an image, each span as a clip of its recording, named by rank."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from PIL import Image

from llama_index_mm_st.evidence import Passage, Region, Span
from llama_index_mm_st.evidence.clips import write_clips

pytest.importorskip("av")


def test_regions_are_cut_out_of_the_image(tmp_path):
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8))
    picture.save(tmp_path / "picture.png")
    node = ImageNode(image_path=str(tmp_path / "picture.png"))
    paths = write_clips(node, [Region((0.5, 0.0, 1.0, 0.5), 0.9), Passage(0, 3, 0.5), Region((0, 0, 0.25, 1), 0.4)],
                        tmp_path / "out", "03")
    assert [p.name if p else None for p in paths] == ["03-region1.png", None, "03-region2.png"]
    with Image.open(paths[0]) as first:
        assert first.size == (100, 50)
        assert np.array_equal(np.asarray(first), np.asarray(picture)[:50, 100:])


def test_an_audio_span_is_a_wav_of_its_length(tmp_path):
    from llama_index_mm_st import MediaReader
    from tests.fixtures import media

    media.write_audio(tmp_path / "talk.wav", media.chirp(seconds=3.0))
    node = MediaReader().load_data([tmp_path / "talk.wav"])[0]
    (path,) = write_clips(node, [Span(0.5, 2.0, 0.8)], tmp_path / "out", "01")
    with wave.open(str(path)) as sound:
        assert path.name == "01-span1.wav" and sound.getnframes() / sound.getframerate() == pytest.approx(1.5, abs=0.01)


def test_a_video_frames_span_is_an_mp4_of_its_video(tmp_path):
    from llama_index_mm_st.media import load_video
    from tests.fixtures import media

    media.write_video(tmp_path / "talk.mp4", media.video_frames(seconds=3.0))
    node = ImageNode(image_path=str(tmp_path / "talk.mp4"), metadata={"frame_time_s": 1.0,
                                                                      "file_path": str(tmp_path / "talk.mp4")})
    (path,) = write_clips(node, [Span(1.0, 2.0, 0.7)], tmp_path / "out", "02")
    clip = load_video(path, "clip")
    assert path.name == "02-span1.mp4" and len(clip.frames) == 10  # 1 s at 10 fps


def test_a_text_node_has_no_files(tmp_path):
    assert write_clips(TextNode(text="abc"), [Passage(0, 3, 1.0)], tmp_path / "out", "01") == [None]
