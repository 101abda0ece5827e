"""Decoding audio and video (media.py, media_refs.py): formats, metadata, guards, broken files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("soxr")

from llama_index.core.schema import Document, ImageNode, MediaResource  # noqa: E402

from llama_index_mm_st import media  # noqa: E402
from llama_index_mm_st.errors import ImageLoadError, MediaLoadError  # noqa: E402
from llama_index_mm_st.inputs import read_node  # noqa: E402
from llama_index_mm_st.media_refs import FRAME_TIME_KEY, media_input  # noqa: E402
from tests.fixtures import media as fixtures  # noqa: E402


@pytest.mark.parametrize("name", ["tone", "tone_flac", "tone_mp3", "tone_ogg", "tone_m4a"])
def test_every_audio_format_decodes_to_the_tone(media_files, name):
    wave = media.load_audio(media_files[name], name, 16_000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) / 16_000 - 1.5) < 0.1
    spectrum = np.abs(np.fft.rfft(wave[: 16_000]))
    assert abs(np.argmax(spectrum) * 16_000 / 16_000 - 440) <= 2  # 1 s window: 1 Hz bins


def test_wav_decodes_as_transformers_load_audio_does(media_files):
    from transformers.audio_utils import load_audio

    pytest.importorskip("soundfile")
    for name in ("tone", "stereo", "chirp"):
        ours = media.load_audio(media_files[name], name, 16_000)
        theirs = load_audio(str(media_files[name]), 16_000, backend="soundfile")
        np.testing.assert_array_equal(ours, theirs)


def test_probe_reads_the_header(media_files):
    audio = media.probe(media_files["stereo"], "stereo")
    assert (audio.kind, audio.sample_rate, audio.channels) == ("audio", 48_000, 2)
    assert audio.duration_s == pytest.approx(1.5, abs=0.01)
    video = media.probe(media_files["clip_mp4"], "clip")
    assert (video.kind, video.width, video.height, video.fps, video.frames) == ("video", 64, 48, 10.0, 30)
    assert video.has_audio and video.duration_s == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("name", ["clip_mp4", "clip_webm", "clip_mkv", "clip_mov"])
def test_video_frames_decode_close_to_what_was_written(media_files, name):
    written = fixtures.video_frames()
    clip = media.load_video(media_files[name], name)
    assert clip.frames.shape == written.shape and clip.indices == list(range(30))
    assert np.abs(clip.frames.astype(int) - written.astype(int)).mean() < 8  # lossy codecs


def test_only_chosen_frames_are_returned(media_files):
    clip = media.load_video(media_files["clip_webm"], "webm", lambda info: [29, 0, 12])
    assert clip.indices == [0, 12, 29] and clip.frames.shape[0] == 3
    frame = media.load_frame(media_files["clip_mkv"], "mkv", 1.25)  # frame 12
    np.testing.assert_array_equal(frame, media.load_video(media_files["clip_mkv"], "mkv", lambda i: [12]).frames[0])


@pytest.mark.parametrize("key", ["audio_truncated", "audio_zero", "audio_garbage", "video_truncated",
                                 "video_zero", "video_garbage", "missing_audio", "missing_video"])
def test_broken_media_is_a_media_load_error_naming_it(broken_media, key):
    path = broken_media[key]
    load = (lambda: media.load_audio(path, str(path), 16_000)) if "audio" in key else (lambda: media.load_video(path, str(path)))
    with pytest.raises(MediaLoadError) as info:
        load()
    assert str(path) in str(info.value) and info.value.reason


def test_limits_are_checked_before_decoding(media_files):
    with pytest.raises(MediaLoadError, match="over the limit of 1 s"):
        media.load_audio(media_files["tone"], "tone", 16_000, media.MediaLimits(max_duration_s=1.0))
    with pytest.raises(MediaLoadError, match="bytes is over the limit of 1000"):
        media.probe(media_files["clip_mp4"], "clip", media.MediaLimits(max_bytes=1000))


def test_arrays_are_downmixed_or_refused_clearly():
    wave = np.linspace(-1, 1, 1000, dtype=np.float32)
    stereo = np.stack([wave, -wave * 0.5])
    np.testing.assert_allclose(media.mono_array(stereo, "x"), wave * 0.25, atol=1e-7)
    np.testing.assert_allclose(media.mono_array(stereo.T, "x"), wave * 0.25, atol=1e-7)
    for bad, words in ((np.zeros((300, 400), np.float32), "is not mono"), (np.zeros((2, 3, 4), np.float32), "is not mono"),
                       ((wave * 100).astype(np.int16), "float samples"), (np.array([np.nan] * 40), "NaN")):
        with pytest.raises(MediaLoadError, match=words):
            media.mono_array(bad, "x")


def test_bare_arrays_and_wrong_types_are_refused():
    with pytest.raises(MediaLoadError, match="a bare array has no rate"):
        media_input("audio", np.zeros(100, np.float32), 0)
    with pytest.raises(TypeError, match="accepted"):
        media_input("video", 3.5, 1)
    with pytest.raises(TypeError, match="'array' and 'sampling_rate'"):
        media_input("audio", {"array": np.zeros(10)}, 0)


def test_nodes_carry_media_through_resources_and_metadata(media_files):
    video = Document(text="a transcript", video_resource=MediaResource(path=str(media_files["clip_mp4"])))
    parts = read_node(video)
    assert parts.modality == "video" and parts.media.kind == "video" and parts.has_media
    assert parts.words == "a transcript" and parts.text_parts() is None  # words go to BM25
    stored = Document(text="", metadata={"audio_path": str(media_files["tone"])})
    assert read_node(stored).modality == "audio"
    frame = ImageNode(image_path=str(media_files["clip_mkv"]), metadata={FRAME_TIME_KEY: 1.25})
    frame_parts = read_node(frame)
    assert frame_parts.modality == "image" and "at 1.25s" in frame_parts.image.label
    image = frame_parts.image.load()
    assert image.size == (64, 48)
    missing = ImageNode(image_path="/nowhere/v.mp4", metadata={FRAME_TIME_KEY: 0.0})
    with pytest.raises(ImageLoadError, match="not found"):
        read_node(missing).image.load()
