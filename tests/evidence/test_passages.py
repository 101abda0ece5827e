"""Passages of text hits: the sentence holding a unique word is the passage, by words; meaning orders
the rest; offsets index the node's own text."""

from __future__ import annotations

import numpy as np
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index_mm_st.evidence import EvidenceQuery, Passage, find_evidence
from llama_index_mm_st.evidence.passages import group, search_passages, sentences
from llama_index_mm_st.evidence.words import QueryTerms
from llama_index_mm_st.inputs import read_query

FILLER = [
    "The committee met on a grey morning to review the quarterly figures.",
    "Several members asked for more time to read the appendix before voting.",
    "Coffee was served in the hall while the projector warmed up.",
    "Nobody objected to moving the next meeting to a Thursday.",
    "The minutes of the previous session were approved without changes.",
    "A short break followed the presentation of the budget.",
]
TARGET = "The replacement valve for the boiler is part QX-7731 from the northern depot."


def _chunk(position: int) -> tuple[str, int, int]:
    parts = FILLER[:position] + [TARGET] + FILLER[position:]
    text = " ".join(parts)
    start = text.index(TARGET)
    return text, start, start + len(TARGET)


def _run(search, embedding):
    try:
        texts = next(search)
        while True:
            texts = search.send(np.asarray(embedding.embed(texts, "text").embeddings))
    except StopIteration as done:
        return done.value


def test_sentences_are_cut_at_ends_and_line_breaks():
    text = "First one. Second one!  Third?\nFourth line\n\nFifth."
    assert [text[a:b] for a, b in sentences(text)] == ["First one.", "Second one!", "Third?", "Fourth line", "Fifth."]


def test_a_long_sentence_is_cut_at_word_boundaries():
    text = " ".join(["word"] * 300)
    spans = sentences(text)
    assert len(spans) > 1 and all(b - a <= 400 for a, b in spans)
    assert all(text[a:b].startswith("word") and text[a:b].endswith("word") for a, b in spans)


def test_group_joins_adjacent_units():
    units = [(i * 10, i * 10 + 5) for i in range(10)]
    assert group(units, 20) == units
    grouped = group(units, 4)
    assert len(grouped) <= 4 and grouped[0][0] == 0 and grouped[-1][1] == 95


def test_the_sentence_with_the_unique_word_is_the_passage(clip):
    for position in (0, 3, 6):
        text, start, end = _chunk(position)
        query = np.asarray(clip.get_query_embedding("where is QX-7731"))
        found = _run(search_passages(text, query, QueryTerms("where is QX-7731")), clip)
        best = found[0]
        assert best[0] <= start and best[1] >= end and best[1] - best[0] < len(text) / 2
        assert all(score <= best[2] for _, _, score in found)


def test_words_match_by_the_stores_stemming():
    terms = QueryTerms("running valves")
    assert terms.share("The valve runs.") == 1.0
    assert terms.share("the and of") == 0.0
    assert [m for m in terms.matching_words("Two valves were running")] == [(4, 10), (16, 23)]


def test_find_evidence_returns_passages_into_the_nodes_text(clip):
    text, start, end = _chunk(2)
    hits = [NodeWithScore(node=TextNode(text=text, metadata={"title": "minutes"}), score=0.5)]
    found = find_evidence(hits, clip, EvidenceQuery(read_query(QueryBundle(query_str="QX-7731 valve"))))
    passages = [item for item in found[0] if isinstance(item, Passage)]
    assert passages[0].start <= start and passages[0].end >= end
    assert TARGET in passages[0].text_of(hits[0].node.get_content())


def test_meaning_alone_picks_a_passage_when_no_word_matches(clip):
    text, _, _ = _chunk(1)
    query = np.asarray(clip.embed([FILLER[4]], "text").embeddings[0])  # a sentence of the chunk, embedded
    found = _run(search_passages(text, query, QueryTerms(None)), clip)
    start = text.index(FILLER[4])
    assert (found[0][0], found[0][1]) == (start, start + len(FILLER[4]))
