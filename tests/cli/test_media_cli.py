"""``mmst index`` and ``mmst search`` on a mixed folder with audio and video: a text+audio model
(tiny CLAP), an image-only model (tiny CLIP: videos as frames) and a video model (tiny Qwen3-VL)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("soxr")

SRT = "1\n00:00:00,000 --> 00:00:01,400\nthe foghorn sounds at dawn\n"


@pytest.fixture()
def mixed(corpus: Path, media_files, broken_media) -> Path:
    """The CLI corpus (text, images, a PDF, a corrupt image) plus audio, video and corrupt media."""
    av = corpus / "av"
    av.mkdir()
    for name in ("tone", "chirp", "tone_mp3", "clip_mp4"):
        shutil.copy(media_files[name], av / media_files[name].name)
    (av / "tone.srt").write_text(SRT)
    for key in ("audio_truncated", "audio_garbage", "video_truncated", "video_zero"):
        shutil.copy(broken_media[key], av / broken_media[key].name)
    (av / "orphan.vtt").write_text("WEBVTT\n")
    return corpus


def _search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_text_and_audio_model_indexes_audio_and_says_what_it_cannot_read(run_cli, mixed, tmp_path, tiny_clap_dir,
                                                                            media_files):
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(mixed), "--store", str(store), "--model", str(tiny_clap_dir), "--no-progress")
    assert code == 0, err
    assert "in the index: 2 text, 0 image, 0 text+image, 3 audio, 0 video" in out
    # one line for what the model can't read (photos, the PDF's pages, the video), no abort
    line = next(line for line in out.splitlines() if line.startswith("not indexed"))
    assert "it reads text, audio" in line and "4 files of image" in line and "1 file of video" in line
    for name in ("audio_truncated.flac", "audio_garbage.flac", "video_truncated.mp4", "video_zero.mp4", "broken.jpg"):
        assert name in err
    assert "skipped 5 files" in err
    assert "1 .vtt" in out  # subtitles without their media are not indexed

    # The transcript, through BM25 (rank fusion: the tiny random model's vectors all look alike, and by
    # relevance exact words alone make a candidate, not an answer).
    words = _search(run_cli, store, "foghorn", "--fusion", "rrf")
    assert Path(words[0]["source"]).name == "tone.wav" and words[0]["modality"] == "audio"
    example = _search(run_cli, store, "--audio", str(media_files["chirp"]), "--top-k", "3")
    assert Path(example[0]["source"]).name == "chirp.wav"
    only_audio = _search(run_cli, store, "valve", "--modality", "audio", "--top-k", "10")
    assert {row["modality"] for row in only_audio} == {"audio"}
    code, _, err = run_cli("search", "--video", str(media_files["clip_mp4"]), "--store", str(store))
    assert code != 0 and "cannot read video" in err


def test_an_image_only_model_indexes_videos_as_timestamped_frames(run_cli, mixed, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(mixed), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    assert "videos as frames" in out and "3 files of audio" in out
    rows = _search(run_cli, store, "red circle", "--modality", "image", "--top-k", "20")
    frames = sorted(row["time_s"] for row in rows if row["time_s"] is not None)
    assert frames == [0.0, 2.0]  # a 3 s video, a frame every 2 s
    assert all(Path(row["source"]).name == "clip_mp4.mp4" for row in rows if row["time_s"] is not None)
    code, table, _ = run_cli("search", "red circle", "--modality", "image", "--top-k", "20", "--store", str(store))
    assert code == 0 and "clip_mp4.mp4 (at 0:02.0)" in table
    # indexing again changes nothing: the frames have stable ids
    code, out, _ = run_cli("index", str(mixed), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")
    assert "added: nothing new" in out


def test_a_video_model_indexes_and_searches_video_by_example(run_cli, mixed, tmp_path, tiny_qwen3_vl_embedder_dir,
                                                             media_files):
    pytest.importorskip("torchvision")
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(mixed / "av"), "--store", str(store), "--model",
                             str(tiny_qwen3_vl_embedder_dir), "--no-progress")
    assert code == 0, err
    assert "1 video" in out and "3 files of audio" in out
    rows = _search(run_cli, store, "--video", str(media_files["clip_mp4"]), "--top-k", "2")
    assert Path(rows[0]["source"]).name == "clip_mp4.mp4" and rows[0]["modality"] == "video"
