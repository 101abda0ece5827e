"""Session fixtures: tiny random models and synthetic images, fabricated offline once per session.

Model builders live in ``tests/fixtures/``; each fixture here only caches a build under a session
temp dir. No test touches a network or a model hub.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Exported ONNX graphs and backend="auto"'s decisions go to a per-session folder (shared by the CLI
# subprocesses and Ray workers a test starts, which inherit the environment), never the user's cache.
_SESSION_ONNX_CACHE = None if "MMST_ONNX_CACHE" in os.environ else tempfile.mkdtemp(prefix="mmst-onnx-tests-")
if _SESSION_ONNX_CACHE is not None:
    os.environ["MMST_ONNX_CACHE"] = _SESSION_ONNX_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SESSION_ONNX_CACHE is not None:  # the process that made it (with xdist: the controller; workers inherit it)
        shutil.rmtree(_SESSION_ONNX_CACHE, ignore_errors=True)


from tests.fixtures import images as image_fixtures  # noqa: E402
from tests.fixtures import models as model_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mmst_fixtures")


@pytest.fixture(scope="session")
def image_files(fixture_root: Path) -> dict[str, Path]:
    """One good image per format: keys jpeg, png, webp, gif, bmp, tiff."""
    return image_fixtures.write_good_images(fixture_root / "images")


@pytest.fixture(scope="session")
def broken_images(fixture_root: Path, image_files: dict[str, Path]) -> dict[str, Path]:
    """Keys truncated, zero_byte, not_image, missing (a path that does not exist)."""
    return image_fixtures.write_broken_images(fixture_root / "broken", image_files["jpeg"])


def _cached(fixture_root: Path, name: str, build) -> Path:  # type: ignore[no-untyped-def]
    path = fixture_root / "models" / name
    if not (path / "config.json").exists():
        build(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(fixture_root: Path) -> Path:
    return _cached(fixture_root, "clip", model_fixtures.build_tiny_clip)


@pytest.fixture(scope="session")
def tiny_siglip_dir(fixture_root: Path) -> Path:
    return _cached(fixture_root, "siglip", model_fixtures.build_tiny_siglip)


@pytest.fixture(scope="session")
def tiny_qwen3_vl_embedder_dir(fixture_root: Path) -> Path:
    from tests.fixtures import qwen_vl

    return _cached(fixture_root, "qwen3_vl_embedder", qwen_vl.build_tiny_qwen3_vl_embedder)


@pytest.fixture(scope="session")
def tiny_qwen_vl_reranker_dir(fixture_root: Path) -> Path:
    from tests.fixtures import qwen_vl

    return _cached(fixture_root, "qwen_vl_reranker", qwen_vl.build_tiny_qwen_vl_reranker)


@pytest.fixture(scope="session")
def tiny_bert_cross_encoder_dir(fixture_root: Path) -> Path:
    from tests.fixtures import rerank_models

    return _cached(fixture_root, "bert_cross_encoder", rerank_models.build_tiny_bert_cross_encoder)


@pytest.fixture(scope="session")
def tiny_blip_itm_dir(fixture_root: Path) -> Path:
    from tests.fixtures import rerank_models

    return _cached(fixture_root, "blip_itm", rerank_models.build_tiny_blip_itm)


@pytest.fixture(scope="session")
def tiny_clap_dir(fixture_root: Path) -> Path:
    from tests.fixtures import audio_models

    return _cached(fixture_root, "clap", audio_models.build_tiny_clap)


@pytest.fixture(scope="session")
def media_files(fixture_root: Path) -> dict[str, Path]:
    """Good audio (tone/chirp/noise WAV, tone in every audio format, a stereo WAV) and video (mp4 with
    an audio track, webm, mkv, mov), 48 kHz audio, 3 s of 64x48 video at 10 fps."""
    pytest.importorskip("av")

    root = fixture_root / "media"
    if not (root / "done").exists():
        files = _write_media(root)
        (root / "done").write_text("\n".join(sorted(files)))
    return {path.stem: path for path in root.iterdir() if path.is_file() and path.name != "done"}


def _write_media(root: Path) -> list[str]:
    from tests.fixtures import media

    written = [
        media.write_audio(root / "tone.wav", media.tone(440)),
        media.write_audio(root / "chirp.wav", media.chirp()),
        media.write_audio(root / "noise.wav", media.noise()),
        media.write_audio(root / "stereo.wav", media.tone(660), channels=2),
    ]
    written += [media.write_audio(root / f"tone_{suffix}.{suffix}", media.tone(440)) for suffix in ("flac", "mp3", "ogg", "m4a")]
    frames = media.video_frames()
    written.append(media.write_video(root / "clip_mp4.mp4", frames, audio=media.tone(300, 3.0)))
    written += [media.write_video(root / f"clip_{suffix}.{suffix}", frames) for suffix in ("webm", "mkv", "mov")]
    return [path.name for path in written]


@pytest.fixture(scope="session")
def broken_media(fixture_root: Path, media_files: dict[str, Path]) -> dict[str, Path]:
    """Keys audio_/video_ truncated, zero, garbage (random bytes), and missing_audio/missing_video."""
    from tests.fixtures import media

    out = media.write_broken_media(fixture_root / "broken_media", media_files["tone_flac"], media_files["clip_mp4"])
    out["missing_audio"] = fixture_root / "broken_media" / "missing.wav"
    out["missing_video"] = fixture_root / "broken_media" / "missing.mp4"
    return out


@pytest.fixture(scope="session")
def tiny_splade_dir(fixture_root: Path) -> Path:
    from tests.fixtures import sparse_models

    return _cached(fixture_root, "splade", sparse_models.build_tiny_splade)


@pytest.fixture(scope="session")
def tiny_colqwen2_dir(fixture_root: Path) -> Path:
    from tests.fixtures import late_models

    return _cached(fixture_root, "colqwen2", late_models.build_tiny_colqwen2)


@pytest.fixture(scope="session")
def tiny_colpali_dir(fixture_root: Path) -> Path:
    from tests.fixtures import late_models

    return _cached(fixture_root, "colpali", late_models.build_tiny_colpali)
