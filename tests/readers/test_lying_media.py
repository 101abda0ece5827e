"""Media are checked against their own content (issue 25): cut or lying PCM headers, content that is not
what its name says, video frames over the pixel limit, and a sidecar that is not text.

Each lying file is fabricated small and deterministic (``tests/fixtures/media.write_lying_media``); the
16000x16000 video is a few KB and is never decoded (the decoder is replaced by one that fails).
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("soxr")

from llama_index_mm_st import CaptionFileError, MediaLoadError, MediaReader, SkippedItemsWarning  # noqa: E402
from llama_index_mm_st import media  # noqa: E402
from llama_index_mm_st.pcm import declared_data  # noqa: E402
from tests.fixtures import media as fixtures  # noqa: E402

SRT = "1\n00:00:00,000 --> 00:00:01,200\nThe foghorn sounds\n"


@pytest.fixture(scope="module")
def lying(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lying")
    good = fixtures.write_audio(root / "good" / "three_seconds.wav", fixtures.tone(440, 3.0))
    files = fixtures.write_lying_media(root / "lying", good)
    files["good"] = good
    return files


@pytest.fixture
def never_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any frame decode fails the test: the frame-size limit must refuse from the header alone."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(media, "_decode_frames", refuse)


@pytest.mark.parametrize("key, declared, present", [
    ("wav_cut", "3.00 s", "1.20 s"),
    ("wav_35h", "126000 s (35.0 h)", "1.00 s"),
    ("wav_50min", "3000 s (50 min)", "1.00 s"),
    ("aiff_cut", "3.00 s", "1.20 s"),
])
def test_pcm_whose_data_is_shorter_than_its_header_says_is_named_truncated(lying, key, declared, present):
    path = lying[key]
    for read in (lambda: media.probe(path, str(path)), lambda: media.load_audio(path, str(path), 16_000),
                 lambda: media.load_audio(path.read_bytes(), "bytes", 16_000)):
        with pytest.raises(MediaLoadError, match="truncated") as caught:
            read()
        assert f"declares {declared} of audio, the file holds {present}" in caught.value.reason
    assert str(path) in str(pytest.raises(MediaLoadError, media.probe, path, str(path)).value)


def test_declared_data_reads_wav_and_aiff_headers(lying):
    whole = declared_data(lying["good"])
    assert whole is not None and (whole.container, whole.declared_bytes) == ("WAV", 288_000)
    assert whole.declared_s == pytest.approx(3.0) and whole.present_s == pytest.approx(3.0)
    cut = declared_data(lying["aiff_cut"])
    assert cut is not None and cut.container == "AIFF" and cut.declared_s == pytest.approx(3.0)
    assert cut.present_s == pytest.approx(1.2, abs=0.01)
    assert declared_data(lying["jpeg_as_wav"]) is None  # not a PCM container: nothing declared
    streamed = bytearray(lying["good"].read_bytes())
    streamed[40:44] = b"\xff\xff\xff\xff"  # a writer that could not seek back leaves the size unknown
    assert declared_data(bytes(streamed)) is None
    media.load_audio(bytes(streamed), "streamed", 16_000)  # so it is not called truncated


def test_a_good_wav_still_decodes_exactly(lying):
    wave = media.load_audio(lying["good"], "good", 48_000)
    np.testing.assert_allclose(wave, fixtures.tone(440, 3.0), atol=1 / 32768)


def test_content_is_refused_by_what_it_is_not_by_its_name(lying):
    with pytest.raises(MediaLoadError, match=r"not audio: the file holds a still image \(jpeg\)"):
        media.load_audio(lying["jpeg_as_wav"], "photo.wav", 16_000)
    with pytest.raises(MediaLoadError, match=r"not a video: the file holds a still image \(jpeg\)"):
        media.load_video(lying["jpeg_as_wav"], "photo.wav")
    with pytest.raises(MediaLoadError, match=r"not a video: the file holds audio only \(wav\)"):
        media.load_video(lying["wav_as_mp4"], "sound.mp4")


def test_video_frames_over_the_pixel_limit_are_refused_from_the_header(lying, never_decode):
    path = lying["huge_frames_mkv"]
    assert path.stat().st_size < 50_000
    reason = re.escape("16000x16000 frames (256000000 pixels) are over the limit of 89478485 pixels per frame")
    with pytest.raises(MediaLoadError, match=reason):
        media.probe(path, str(path))
    with pytest.raises(MediaLoadError, match=reason):
        media.load_video(path, str(path), lambda info: [0])
    with pytest.raises(MediaLoadError, match="over the limit of 1000 pixels per frame"):
        media.probe(path, str(path), media.MediaLimits(max_frame_pixels=1000))


def test_video_frames_to_decode_are_bounded_in_bytes(tmp_path, never_decode):
    clip = fixtures.write_video(tmp_path / "clip.mkv", fixtures.video_frames())  # 30 frames of 64x48
    limits = media.MediaLimits(max_decoded_bytes=64 * 48 * 3 * 10)
    with pytest.raises(MediaLoadError, match="30 frames of 64x48 would decode to 276480 bytes, over the limit of 92160"):
        media.load_video(clip, "clip", limits=limits)


def test_the_decoded_bytes_bound_also_holds_frame_by_frame(tmp_path, monkeypatch):
    """The second line of defence, for a stream whose frames grow after its header: each frame is
    checked before its RGB copy (the header checks are switched off here to reach it)."""
    import av

    clip = fixtures.write_video(tmp_path / "clip.mkv", fixtures.video_frames())
    limits = media.MediaLimits(max_decoded_bytes=64 * 48 * 3 * 10)
    assert media.load_video(clip, "clip", lambda info: [0, 9], limits=limits).frames.shape == (2, 48, 64, 3)
    monkeypatch.setattr(media, "_check_decoded_bytes", lambda *args: None)
    with pytest.raises(MediaLoadError, match="its frames decode to more than 92160 bytes"):
        media.load_video(clip, "clip", limits=limits)
    with av.open(str(clip)) as container, pytest.raises(MediaLoadError, match="frame 0 is 64x48, over the limit of 100"):
        media._decode_frames(container, "clip", None, 5, media.MediaLimits(max_frame_pixels=100))


@pytest.fixture
def folder(tmp_path: Path, lying: dict[str, Path], media_files: dict[str, Path]) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    for key in ("wav_cut", "wav_35h", "wav_50min", "jpeg_as_wav", "wav_as_mp4", "huge_frames_mkv"):
        shutil.copy(lying[key], root / lying[key].name)
    shutil.copy(media_files["tone"], root / "talk.wav")
    (root / "talk.srt").write_bytes(SRT.encode("utf-8")[:20] + b"\xff\xfe caf\xe9\n")  # Latin-1 bytes in it
    shutil.copy(media_files["chirp"], root / "interview.wav")
    (root / "interview.srt").write_bytes(b"\xff\xfe" + SRT.encode("utf-16-le"))  # UTF-16 with its BOM: fine
    return root


def test_the_reader_names_every_lying_file_and_the_sidecar_it_could_not_read(folder, never_decode):
    reader = MediaReader()
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data(folder)
    by_name = {doc.metadata["file_name"]: doc for doc in docs}
    assert sorted(by_name) == ["interview.wav", "talk.wav"]
    assert by_name["talk.wav"].text == "" and "transcript_file" not in by_name["talk.wav"].metadata
    assert by_name["interview.wav"].text == "The foghorn sounds"
    failed = {Path(f.item).name: f.error for f in reader.last_report.failures}
    assert sorted(failed) == ["claims_35h.wav", "claims_50min.wav", "cut.wav", "huge_frames.mkv", "photo.wav",
                              "sound.mp4", "talk.srt"]
    assert all("truncated" in failed[n].reason for n in ("claims_35h.wav", "claims_50min.wav", "cut.wav"))
    assert "still image" in failed["photo.wav"].reason and "audio only" in failed["sound.mp4"].reason
    assert "pixels per frame" in failed["huge_frames.mkv"].reason
    sidecar = failed["talk.srt"]
    assert isinstance(sidecar, CaptionFileError)
    assert sidecar.reason == "not UTF-8 text (byte 0xff at offset 20); talk.wav is read without its words"


def test_header_only_verification_catches_them_too(folder, never_decode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)
        reader = MediaReader(verify="header")
        docs = reader.load_data(folder)
    assert sorted(d.metadata["file_name"] for d in docs) == ["interview.wav", "talk.wav"]
    with pytest.raises(CaptionFileError, match="talk.srt"):
        MediaReader(on_error="raise").load_data(folder / "talk.wav")
