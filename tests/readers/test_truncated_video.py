"""Video that lies (issue 32): an MP4, MOV, MKV or WebM cut short still declares its whole size, and
FFmpeg reads such a file as far as it goes (one with its index first, as a good shorter video). It is
named truncated from its structure (``containers.overrun``), by the media functions, ``MediaReader``,
``mmst index`` and the server, and a whole file of each kind still reads."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

pytest.importorskip("av")

from llama_index_mm_st import MediaLoadError, MediaReader, SkippedItemsWarning  # noqa: E402
from llama_index_mm_st import media  # noqa: E402
from llama_index_mm_st.containers import overrun  # noqa: E402
from tests.fixtures import media as fixtures  # noqa: E402

VARIANTS = ("mp4", "mp4_faststart", "mov", "mov_faststart", "mkv", "webm", "mp4_open_mdat")
PART = {"mp4": "'mdat' box", "mp4_faststart": "'mdat' box", "mov": "'mdat' box", "mov_faststart": "'mdat' box",
        "mkv": "Segment", "webm": "Segment", "mp4_open_mdat": "sample tables"}
CONTAINER = {"mp4": "MP4", "mp4_faststart": "MP4", "mov": "QuickTime", "mov_faststart": "QuickTime", "mkv": "Matroska",
             "webm": "WebM", "mp4_open_mdat": "MP4"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fixtures.write_truncated_videos(tmp_path_factory.mktemp("truncated"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_cut_video_is_named_truncated_by_every_read(videos, variant: str) -> None:
    path = videos[variant]
    found = overrun(path)
    assert found is not None and found.container == CONTAINER[variant] and PART[variant] in found.part
    assert found.size == path.stat().st_size < found.declared_end == videos[f"whole_{variant}"].stat().st_size \
        or variant in ("mp4", "mov")  # index last: the data box ends before the (lost) index
    for read in (lambda: media.probe(path, str(path)), lambda: media.load_video(path, str(path)),
                 lambda: media.probe(path.read_bytes(), "bytes"), lambda: media.load_frame(path, str(path), 0.5)):
        with pytest.raises(MediaLoadError, match=f"truncated: its {PART[variant]} runs to byte") as caught:
            read()
        assert f"of the {CONTAINER[variant]} file, which holds {path.stat().st_size:,} bytes (7" in caught.value.reason


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_whole_video_of_each_kind_still_reads(videos, variant: str) -> None:
    path = videos[f"whole_{variant}"]
    assert overrun(path) is None
    info = media.probe(path, str(path))
    assert info.duration_s == pytest.approx(3.0, abs=0.05)
    assert len(media.load_video(path, str(path)).frames) == 30


def test_the_reader_and_mmst_index_name_them(videos, tmp_path: Path, tiny_clip_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.cli import main

    folder = tmp_path / "videos"
    folder.mkdir()
    for variant in VARIANTS:
        shutil.copy(videos[variant], folder / videos[variant].name)
    shutil.copy(videos["whole_mp4_faststart"], folder / "good.mp4")
    reader = MediaReader()
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data(folder)
    assert [doc.metadata["file_name"] for doc in docs] == ["good.mp4"]
    failed = {Path(f.item).name: f.error.reason for f in reader.last_report.failures}
    assert sorted(failed) == sorted(videos[v].name for v in VARIANTS)
    assert all(reason.startswith("truncated: ") for reason in failed.values()), failed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["index", str(folder), "--store", str(tmp_path / "store"), "--model", str(tiny_clip_dir)]) == 0
    out = capsys.readouterr()
    for variant in VARIANTS:
        line = next(line for line in (out.out + out.err).splitlines() if videos[variant].name in line)
        assert "truncated" in line, line


def test_the_server_names_a_cut_video_in_a_400_before_queueing_it(videos) -> None:
    """A server reads each media item's header before queueing it (``serve.items.check_header``)."""
    pytest.importorskip("fastapi")
    from llama_index_mm_st.fetch import FetchOptions
    from llama_index_mm_st.serve.errors import APIError
    from llama_index_mm_st.serve.items import MediaRules, check_header
    from llama_index_mm_st.serve.settings import Limits

    rules = MediaRules(FetchOptions(), None, media.MediaLimits(), Limits(), None)
    assert check_header(videos["whole_mkv"].read_bytes(), "video", "input[0]", rules) > 0
    with pytest.raises(APIError) as caught:
        check_header(videos["mkv"].read_bytes(), "video", "input[1]", rules)
    assert caught.value.status == 400 and caught.value.param == "input[1]"
    assert caught.value.message.startswith("input[1]: truncated: its Segment runs to byte")
