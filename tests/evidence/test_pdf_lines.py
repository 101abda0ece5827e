"""Regions of PDF pages from the text layer: the line holding a unique word is the region."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle

from llama_index_mm_st.evidence import EvidenceQuery, Region, find_evidence
from llama_index_mm_st.evidence.pdf_text import line_regions, page_lines
from llama_index_mm_st.evidence.words import QueryTerms
from llama_index_mm_st.inputs import read_query
from tests.fixtures.evidence import pdf_with_lines

pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")

LINES = ["Quarterly report of the northern region", "Revenue grew in every month of the quarter",
         "The zanzibar account closed with a surplus", "Costs were flat and staffing unchanged",
         "Next review is planned for the spring"]
A4_HEIGHT_MM, TOP_MM, LINE_MM = 297.0, 10.0, 10.0


def _band(index: int) -> tuple[float, float]:
    return (TOP_MM + LINE_MM * index) / A4_HEIGHT_MM, (TOP_MM + LINE_MM * (index + 1)) / A4_HEIGHT_MM


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    return pdf_with_lines(tmp_path_factory.mktemp("pdf") / "report.pdf", LINES)


def test_the_line_with_the_unique_word_is_the_region(pdf):
    regions = line_regions(page_lines(pdf, 1), QueryTerms("zanzibar"))
    assert len(regions) == 1
    (x0, y0, x1, y1), score = regions[0]
    top, bottom = _band(2)
    assert top - 0.005 <= y0 < y1 <= bottom + 0.005  # inside the third line's band
    assert x0 < 0.1 and x1 > 0.4  # the whole line, not the word alone
    assert score == 1.0


def test_lines_are_ranked_by_the_share_of_query_words(pdf):
    regions = line_regions(page_lines(pdf, 1), QueryTerms("revenue month quarterly"))
    first, second = regions[0], regions[1]
    assert _band(1)[0] - 0.005 <= first[0][1] <= _band(1)[1]  # "Revenue ... month ... quarter": all three terms
    assert first[1] > second[1] > 0


def test_the_region_holds_the_lines_ink_on_the_rendered_page(pdf, tmp_path):
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    image = document[0].render(scale=2).to_pil().convert("L")
    document.close()
    (box, _), = line_regions(page_lines(pdf, 1), QueryTerms("zanzibar"))
    inside = np.asarray(image.crop(Region(box, 1.0).pixels(*image.size)))
    assert (inside < 128).mean() > 0.05  # dark text
    below = np.asarray(image.crop(Region((box[0], box[3] + 0.1, box[2], min(1.0, box[3] + 0.1 + (box[3] - box[1]))), 1.0)
                                  .pixels(*image.size)))
    assert (below < 128).mean() < (inside < 128).mean()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_pages_give_boxes_on_the_page_as_rendered(pdf, tmp_path, rotation):
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    document[0].set_rotation(rotation)
    rotated = tmp_path / f"rotated{rotation}.pdf"
    document.save(str(rotated))
    document.close()
    document = pypdfium2.PdfDocument(str(rotated))
    image = document[0].render(scale=2).to_pil().convert("L")
    document.close()
    (box, _), = line_regions(page_lines(rotated, 1), QueryTerms("zanzibar"))
    inside = np.asarray(image.crop(Region(box, 1.0).pixels(*image.size)))
    assert (inside < 128).mean() > 0.05
    tall = (box[3] - box[1]) * image.size[1] > (box[2] - box[0]) * image.size[0]
    assert tall == (rotation in (90, 270))


def test_a_pdf_page_hit_gets_line_regions_and_passages(pdf, clip, tmp_path):
    from llama_index_mm_st.readers import ImageReader

    pages = ImageReader().load_data([pdf])
    hits = [NodeWithScore(node=pages[0], score=1.0)]
    found = find_evidence(hits, clip, EvidenceQuery(read_query(QueryBundle(query_str="the zanzibar surplus"))))
    regions = [item for item in found[0] if isinstance(item, Region)]
    assert regions[0].page == 1 and _band(2)[0] - 0.005 <= regions[0].box[1] <= _band(2)[1]
    words = pages[0].get_content(metadata_mode="none")  # type: ignore[arg-type]
    passages = [item for item in found[0] if item.kind == "passage"]
    assert passages and "zanzibar" in passages[0].text_of(words)


def test_a_page_number_the_pdf_does_not_have_is_an_error(pdf):
    with pytest.raises(ValueError, match="not a page 3"):
        page_lines(pdf, 3)
