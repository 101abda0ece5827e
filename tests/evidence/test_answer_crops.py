"""The answer path: a multimodal chat LLM receives the regions that matched as crops (no larger than the
page) with a small view of the page, instead of whole pages; the response's sources carry the boxes;
audio goes as the matched span."""

from __future__ import annotations

import io
import wave

import pytest
from llama_index.core.base.llms.types import AudioBlock, ImageBlock, TextBlock
from PIL import Image

from llama_index_mm_st import ImageReader, MultimodalQdrantStore, build_pipeline
from llama_index_mm_st.evidence import Region, Span, node_evidence
from tests.fixtures.evidence import pdf_with_lines
from tests.test_answer import RecordingChatLLM

pytest.importorskip("pypdfium2")


def _images(llm):
    blocks = [block for message in llm.messages for block in message.blocks]
    return blocks, [Image.open(block.resolve_image()) for block in blocks if isinstance(block, ImageBlock)]


@pytest.fixture(scope="module")
def page_store(tmp_path_factory, clip):
    folder = tmp_path_factory.mktemp("answer")
    pdf = pdf_with_lines(folder / "report.pdf", ["Quarterly report", "The zanzibar account closed with a surplus",
                                                 "Costs were flat"])
    pages = ImageReader(pdf_dpi=100).load_data([pdf])
    store = MultimodalQdrantStore("answer_crops")
    store.add(clip(pages))
    yield store, Image.open(pages[0].image_resource.path).size
    store.close()


def test_the_llm_gets_crops_and_a_small_page_and_sources_cite_the_box(page_store, clip):
    store, page_size = page_store
    llm = RecordingChatLLM()
    response = build_pipeline(store, clip, top_k=1).as_query_engine(llm=llm, multimodal=True).query("zanzibar account")
    blocks, images = _images(llm)
    assert len(images) == 2  # the line's crop, then the page downscaled
    crop, context = images
    assert crop.size[0] <= page_size[0] and crop.size[1] <= page_size[1]
    assert crop.size[0] > 4 * crop.size[1]  # a line of text
    assert max(context.size) == 256 and context.size[0] * context.size[1] < page_size[0] * page_size[1] / 4
    captions = " ".join(block.text for block in blocks if isinstance(block, TextBlock))
    assert "region 1 of page 1" in captions
    evidence = node_evidence(response.source_nodes[0])
    regions = [piece for piece in evidence if isinstance(piece, Region)]
    assert regions and regions[0].page == 1
    assert f"{regions[0].box[0]:.2f}" in captions  # the LLM is told the box it can cite


def test_context_px_none_sends_the_crops_alone(page_store, clip):
    store, page_size = page_store
    llm = RecordingChatLLM()
    build_pipeline(store, clip, top_k=1).as_query_engine(llm=llm, multimodal=True, context_px=None).query("zanzibar")
    _, images = _images(llm)
    assert len(images) == 1 and images[0].size[1] < page_size[1] / 4


def test_fewer_image_pixels_than_whole_pages(page_store, clip):
    store, page_size = page_store
    whole, cropped = RecordingChatLLM(), RecordingChatLLM()
    pipeline = build_pipeline(store, clip, top_k=1)
    pipeline.as_query_engine(llm=whole, multimodal=True, evidence=False).query("zanzibar")
    pipeline.as_query_engine(llm=cropped, multimodal=True).query("zanzibar")
    pixels = [sum(i.size[0] * i.size[1] for i in _images(llm)[1]) for llm in (whole, cropped)]
    assert pixels[0] == page_size[0] * page_size[1] and pixels[1] < pixels[0] / 3


def test_audio_goes_as_the_matched_span(clap, tmp_path):
    pytest.importorskip("av")
    from llama_index_mm_st import MediaReader
    from tests.fixtures import media
    from tests.fixtures.evidence import recording_with_clip

    clip = media.chirp(seconds=2.0)
    media.write_audio(tmp_path / "query.wav", clip)
    media.write_audio(tmp_path / "long.wav", recording_with_clip(clip, media.RATE, 10.0, 6.0))
    store = MultimodalQdrantStore("answer_audio")
    store.add(clap(MediaReader().load_data([tmp_path / "long.wav"])))
    llm = RecordingChatLLM()
    engine = build_pipeline(store, clap, top_k=1).as_query_engine(llm=llm, multimodal=True, media=True)
    from llama_index_mm_st.inputs import MediaQueryBundle

    response = engine.query(MediaQueryBundle(query_str="", media=str(tmp_path / "query.wav"), media_kind="audio"))
    store.close()
    spans = [piece for piece in node_evidence(response.source_nodes[0]) if isinstance(piece, Span)]
    assert spans and abs(spans[0].start_s - 6.0) <= 0.25
    audio = [block for message in llm.messages for block in message.blocks if isinstance(block, AudioBlock)]
    assert len(audio) == 1
    with wave.open(io.BytesIO(audio[0].resolve_audio().read())) as sound:
        assert sound.getnframes() / sound.getframerate() == pytest.approx(spans[0].end_s - spans[0].start_s, abs=0.05)
