"""Audio (tiny CLAP) and video (tiny Qwen3-VL) through MultimodalEmbedding: parity with
sentence-transformers in fp32, per-item isolation, and the guards sentence-transformers lacks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("soxr")

from llama_index.core.schema import Document, MediaResource  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from llama_index_mm_st import MultimodalEmbedding  # noqa: E402
from llama_index_mm_st.errors import MediaLoadError, UnsupportedModalityError  # noqa: E402
from llama_index_mm_st.media import load_audio, load_video  # noqa: E402
from tests.fixtures import media as fixtures  # noqa: E402

PARITY = 1e-5


@pytest.fixture(scope="module")
def clap(tiny_clap_dir):
    return MultimodalEmbedding(str(tiny_clap_dir), precision="fp32", device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def clap_st(tiny_clap_dir):
    return SentenceTransformer(str(tiny_clap_dir), device="cpu")


def test_audio_paths_match_sentence_transformers_own_decoding(clap, clap_st, media_files):
    pytest.importorskip("soundfile")  # what sentence-transformers (transformers' load_audio) decodes WAV with
    names = ["tone", "chirp", "noise", "stereo"]  # 48 kHz files, the model reads 16 kHz: all resampled
    ours = np.array(clap.embed([media_files[n] for n in names], "audio").embeddings)
    theirs = clap_st.encode([str(media_files[n]) for n in names], normalize_embeddings=True)
    assert np.abs(ours - theirs).max() < PARITY
    assert np.abs(ours[0] - ours[1]).max() > 1e-3  # the inputs differ, and so do their vectors


def test_audio_arrays_and_compressed_formats_match(clap, clap_st, media_files):
    inputs = [{"array": fixtures.tone(440, rate=22_050), "sampling_rate": 22_050},
              {"array": fixtures.chirp(rate=16_000), "sampling_rate": 16_000}]
    inputs += [media_files[n] for n in ("tone_mp3", "tone_ogg", "tone_m4a", "tone_flac")]
    ours = np.array(clap.embed(inputs, "audio").embeddings)
    decoded = [load_audio(media_files[n], n, 16_000) for n in ("tone_mp3", "tone_ogg", "tone_m4a", "tone_flac")]
    from llama_index_mm_st.media import resample
    arrays = [resample(fixtures.tone(440, rate=22_050), 22_050, 16_000), fixtures.chirp(rate=16_000)] + decoded
    theirs = clap_st.encode([{"array": a, "sampling_rate": 16_000} for a in arrays], normalize_embeddings=True)
    assert np.abs(ours - theirs).max() < PARITY


def test_audio_in_half_precision_is_close_to_fp32(tiny_clap_dir, clap, media_files):
    """A bf16 model gets its audio features in bf16 (CLAP's batch norm refuses fp32 inputs on a bf16
    model; ``precision="auto"`` picks bf16 on AVX512-BF16 and AMX CPUs)."""
    half = MultimodalEmbedding(str(tiny_clap_dir), precision="bf16", device="cpu", batch_size=4)
    names = ["tone", "chirp", "noise"]
    fast = np.array(half.embed([media_files[n] for n in names], "audio").embeddings)
    exact = np.array(clap.embed([media_files[n] for n in names], "audio").embeddings)
    assert fast.shape == exact.shape
    assert np.sum(fast * exact, axis=1).min() > 0.99


def test_text_queries_share_the_space(clap, clap_st):
    ours = np.array(clap.get_query_embedding("a dog barking"))
    assert np.abs(ours - clap_st.encode(["a dog barking"], normalize_embeddings=True)[0]).max() < PARITY


def test_bad_audio_is_isolated_and_named(clap, media_files, broken_media):
    inputs = [media_files["tone"], broken_media["audio_truncated"], str(broken_media["missing_audio"]),
              {"array": np.zeros((300, 400), np.float32), "sampling_rate": 16_000}, media_files["chirp"]]
    result = clap.embed(inputs, "audio", on_error="skip")
    assert [f.position for f in result.failures] == [1, 2, 3]
    assert all(isinstance(f.error, MediaLoadError) for f in result.failures)
    assert "missing.wav" in str(result.failures[1].error) and "not found" in str(result.failures[1].error)
    assert "is not mono" in str(result.failures[2].error)
    alone = clap.embed([media_files["chirp"]], "audio").embeddings[0]
    assert np.abs(np.array(result.embeddings[4]) - alone).max() < PARITY  # the good neighbours are unharmed
    with pytest.raises(MediaLoadError, match="missing.wav"):
        clap.embed([str(broken_media["missing_audio"])], "audio")


def test_a_model_without_the_modality_says_so(clap, media_files):
    with pytest.raises(UnsupportedModalityError, match="cannot encode 'video'"):
        clap.embed([media_files["clip_mp4"]], "video")
    assert clap.supports("audio") and not clap.supports("image")


def test_media_documents_get_media_and_transcript_vectors(clap, media_files):
    doc = Document(text="ring ring", audio_resource=MediaResource(path=str(media_files["tone"])))
    bare = Document(text="", audio_resource=MediaResource(path=str(media_files["chirp"])))
    out = clap([doc, bare])
    assert len(out) == 2
    expected = clap.embed([media_files["tone"]], "audio").embeddings[0]
    assert np.abs(np.array(out[0].embedding) - expected).max() < PARITY
    assert out[1].embedding is not None and np.abs(np.array(out[1].embedding) - np.array(out[0].embedding)).max() > 1e-3


@pytest.fixture(scope="module")
def qwen(tiny_qwen3_vl_embedder_dir):
    pytest.importorskip("torchvision")
    return MultimodalEmbedding(str(tiny_qwen3_vl_embedder_dir), precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def qwen_st(tiny_qwen3_vl_embedder_dir):
    return SentenceTransformer(str(tiny_qwen3_vl_embedder_dir), device="cpu")


@pytest.mark.parametrize("role", ["document", "query"])
def test_video_matches_sentence_transformers_on_every_frame(qwen, qwen_st, media_files, role):
    """We decode only the frames the processor would sample; sentence-transformers gets all of them and
    samples itself. Equal vectors mean the sampling and the timestamps agree."""
    names = ["clip_mp4", "clip_webm", "clip_mkv"]
    ours = np.array(qwen.embed([media_files[n] for n in names], "video", role=role).embeddings)
    full = [load_video(media_files[n], n) for n in names]
    encode = qwen_st.encode_query if role == "query" else qwen_st.encode_document
    theirs = encode([{"array": c.frames, "video_metadata": c.metadata()} for c in full], normalize_embeddings=True)
    assert np.abs(ours - theirs).max() < PARITY


def test_video_arrays_and_bad_videos(qwen, media_files, broken_media):
    frames = fixtures.video_frames(seconds=2.0)
    result = qwen.embed([{"array": frames, "fps": 10}, broken_media["video_garbage"], broken_media["video_zero"],
                         media_files["clip_mov"]], "video", on_error="skip")
    assert [f.position for f in result.failures] == [1, 2]
    assert "video_zero" in str(result.failures[1].error) and "zero bytes" in str(result.failures[1].error)
    assert result.embeddings[0] is not None and result.embeddings[3] is not None


def test_media_urls_follow_the_image_url_policy(clap):
    result = clap.embed(["https://example.com/a.wav", "file:///tmp/a.wav"], "audio", on_error="skip")
    reasons = [str(f.error) for f in result.failures]
    assert len(reasons) == 2 and "allow_urls=True" in reasons[0] and "file://" in reasons[1]
    assert all(isinstance(f.error, MediaLoadError) for f in result.failures)
