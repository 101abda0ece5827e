"""Audio through the server: a WAV as a data: URI (the openai SDK's shape, ``modality: audio``), and the
remote embedding's files and waveforms, equal to the in-process embedding of the same items."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.serve.conftest import running_server


@pytest.fixture(scope="module")
def audio_server(tiny_clap_dir, media_files):  # type: ignore[no-untyped-def]
    pytest.importorskip("av")
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.serve import Components, Limits, ServeSettings, create_app

    embedding = MultimodalEmbedding(str(tiny_clap_dir), device="cpu", precision="fp32")
    settings = ServeSettings(limits=Limits(max_batch_media_seconds=2.0))  # a 1.5 s clip per batch
    with running_server(create_app(Components(embedding), settings)) as base:
        yield base, embedding


def test_audio_as_data_uris_equals_in_process(audio_server, media_files) -> None:  # type: ignore[no-untyped-def]
    base, embedding = audio_server
    paths = [media_files[name] for name in ("tone", "chirp", "noise")]
    uris = ["data:audio/wav;base64," + base64.b64encode(p.read_bytes()).decode() for p in paths]
    response = httpx.post(base + "/v1/embeddings", json={"input": uris, "modality": "audio"}, timeout=60)
    assert response.status_code == 200, response.text
    got = [item["embedding"] for item in response.json()["data"]]
    expected = embedding.embed([str(p) for p in paths], "audio").embeddings
    assert np.abs(np.asarray(got) - np.asarray(expected)).max() < 1e-5
    bad = httpx.post(base + "/v1/embeddings", json={"input": [uris[0], "data:audio/wav;base64,AAAA"], "modality": "audio"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input[1]"


def test_the_remote_embedding_sends_files_and_waveforms(audio_server, media_files) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st import RemoteMultimodalEmbedding
    from tests.fixtures.media import RATE, tone

    base, embedding = audio_server
    remote = RemoteMultimodalEmbedding(base)
    assert remote.supports("audio") and not remote.supports("image")
    wave = {"array": tone(523.0), "sampling_rate": RATE}
    items = [media_files["tone"], str(media_files["tone_flac"]), wave]
    got = remote.embed(items, "audio").embeddings
    expected = embedding.embed(items, "audio").embeddings
    assert np.abs(np.asarray(got) - np.asarray(expected)).max() < 1e-5
