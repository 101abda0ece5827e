"""MediaReader: documents that point at their media, with metadata, transcripts, ids and a report of
bad files; VideoFrameSampler: videos as timestamped frame nodes."""

from __future__ import annotations

import shutil
import warnings

import pytest

pytest.importorskip("av")

from llama_index_mm_st import MediaReader, SkippedItemsWarning, VideoFrameSampler  # noqa: E402
from llama_index_mm_st.inputs import read_node  # noqa: E402
from llama_index_mm_st.media_refs import FRAME_TIME_KEY  # noqa: E402
from llama_index_mm_st.readers.media_reader import subtitle_words  # noqa: E402

SRT = "1\n00:00:00,000 --> 00:00:01,200\nThe <i>foghorn</i> sounds\n\n2\n00:00:01,300 --> 00:00:02,000\nat dawn\n"
VTT = "WEBVTT\n\nNOTE a comment\nthat spans lines\n\n00:00.000 --> 00:01.000 align:start\n- Hello there\n"


@pytest.fixture
def folder(tmp_path, media_files, broken_media):
    root = tmp_path / "media"
    root.mkdir()
    for name in ("tone", "chirp", "tone_mp3", "clip_mp4", "clip_webm"):
        shutil.copy(media_files[name], root / media_files[name].name)
    (root / "tone.srt").write_text(SRT)
    (root / "clip_webm.webm.txt").write_text("a square moves to the right")
    shutil.copy(broken_media["audio_truncated"], root / "bad_truncated.flac")
    shutil.copy(broken_media["video_zero"], root / "bad_zero.mp4")
    shutil.copy(broken_media["video_garbage"], root / "bad_garbage.mkv")
    (root / "notes.docx").write_bytes(b"x")
    return root


def test_a_folder_becomes_media_documents_and_a_report(folder):
    reader = MediaReader()
    with pytest.warns(SkippedItemsWarning, match="3 item"):
        docs = reader.load_data(folder)
    by_name = {doc.metadata["file_name"]: doc for doc in docs}
    assert sorted(by_name) == ["chirp.wav", "clip_mp4.mp4", "clip_webm.webm", "tone.wav", "tone_mp3.mp3"]
    failed = {f.item.rsplit("/", 1)[-1]: str(f.error) for f in reader.last_report.failures}
    assert sorted(failed) == ["bad_garbage.mkv", "bad_truncated.flac", "bad_zero.mp4"]
    assert "truncated" in failed["bad_truncated.flac"] and "zero bytes" in failed["bad_zero.mp4"]
    assert reader.last_report.ignored_types[".docx"] == 1

    tone = by_name["tone.wav"]
    assert tone.audio_resource.path.name == "tone.wav" and tone.audio_resource.data is None  # points, never holds
    assert tone.metadata["media_kind"] == "audio" and tone.metadata["sample_rate"] == 48_000
    assert tone.metadata["channels"] == 1 and tone.metadata["duration_s"] == pytest.approx(1.5, abs=0.01)
    assert len(tone.metadata["sha256"]) == 64 and tone.metadata["file_size"] == (folder / "tone.wav").stat().st_size
    assert tone.text == "The foghorn sounds\nat dawn"  # the subtitles, timings and tags dropped
    clip = by_name["clip_mp4.mp4"]
    assert (clip.metadata["width"], clip.metadata["height"], clip.metadata["fps"], clip.metadata["frames"]) == (64, 48, 10.0, 30)
    assert read_node(clip).modality == "video"
    assert by_name["clip_webm.webm"].text == "a square moves to the right"
    assert "sha256" in tone.excluded_embed_metadata_keys and "duration_s" in tone.excluded_embed_metadata_keys


def test_ids_are_stable_and_relative(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)
        first = {d.metadata["file_name"]: d.id_ for d in MediaReader().load_data(folder)}
        moved = shutil.copytree(folder, tmp_path / "moved")
        second = {d.metadata["file_name"]: d.id_ for d in MediaReader().load_data(moved)}
        absolute = {d.metadata["file_name"]: d.id_ for d in MediaReader(absolute_ids=True).load_data(moved)}
    assert first == second and set(absolute.values()).isdisjoint(second.values())


def test_limits_and_raise_mode(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)
        reader = MediaReader(max_duration_s=2.0)
        docs = reader.load_data(folder)
    assert {d.metadata["file_name"] for d in docs} == {"chirp.wav", "tone.wav", "tone_mp3.mp3"}
    assert any("over the limit of 2 s" in str(f.error) for f in reader.last_report.failures)
    from llama_index_mm_st import MediaLoadError

    with pytest.raises(MediaLoadError, match="bad_garbage"):
        MediaReader(on_error="raise").load_data(folder / "bad_garbage.mkv")


def test_subtitle_words_of_vtt():
    assert subtitle_words(VTT) == "- Hello there"


def test_frames_are_timestamped_image_nodes(media_files):
    video = MediaReader().load_data(media_files["clip_mp4"])[0]
    audio = MediaReader().load_data(media_files["tone"])[0]
    nodes = VideoFrameSampler(every_s=1.0)([video, audio])
    frames = [n for n in nodes if FRAME_TIME_KEY in n.metadata]
    assert [f.metadata[FRAME_TIME_KEY] for f in frames] == [0.0, 1.0, 2.0]  # a 3 s video, one frame a second
    assert nodes[-1] is audio  # not a video: passed through
    assert len({f.node_id for f in frames}) == len(frames)
    assert [f.node_id for f in VideoFrameSampler(every_s=1.0)([video])] == [f.node_id for f in frames]
    image = read_node(frames[1]).image.load()
    assert image.size == (64, 48)
    assert all(f.ref_doc_id == video.id_ for f in frames)
    capped = VideoFrameSampler(every_s=0.1, max_frames=5)([video])
    assert len(capped) == 5 and capped[-1].metadata[FRAME_TIME_KEY] < 3.0


@pytest.mark.parametrize("suffix", [".aiff", ".aif"])
def test_aiff_files_in_a_folder_are_audio_documents(tmp_path, suffix):
    """AIFF is read (PyAV decodes it; pcm.py checks its header against its data), so a folder's
    ``.aiff``/``.aif`` files are audio documents, not ignored types."""
    from tests.fixtures.media import tone, write_aiff

    root = tmp_path / "aiff"
    root.mkdir()
    write_aiff(root / f"tone{suffix}", tone(440, 1.0))
    reader = MediaReader()
    docs = reader.load_data(root)
    assert [doc.metadata["file_name"] for doc in docs] == [f"tone{suffix}"]
    assert docs[0].metadata["media_kind"] == "audio" and docs[0].metadata["duration_s"] == pytest.approx(1.0, abs=0.02)
    assert not reader.last_report.ignored_types and not reader.last_report.failures
