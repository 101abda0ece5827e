"""``evaluate``: recall@k, nDCG@10 and MRR@10 against figures worked out by hand on a tiny qrels file,
and agreement with LlamaIndex's ``RetrieverEvaluator`` on a real pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List

import numpy as np
import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index_mm_st.evaluation import evaluate, load_qrels, parse_qrels


class FixedRetriever(BaseRetriever):
    """Returns a fixed ranked list per query text: the metrics, not the retrieval, are under test."""

    def __init__(self, results: dict[str, list[TextNode]], mode: str = "hybrid") -> None:
        super().__init__()
        self.results, self.mode = results, mode

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return [NodeWithScore(node=n, score=1.0 / (i + 1)) for i, n in enumerate(self.results[query_bundle.query_str])]


class Replayed(BaseRetriever):
    """Retrieves once per query text, then replays that list: two evaluators compared on one retriever
    see the same ranking even where the store's scores tie (fused ranks often do)."""

    def __init__(self, inner: BaseRetriever) -> None:
        super().__init__()
        self.inner, self.seen = inner, {}
        self.mode = getattr(inner, "mode", "hybrid")

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        if query_bundle.query_str not in self.seen:
            self.seen[query_bundle.query_str] = self.inner.retrieve(query_bundle)
        return self.seen[query_bundle.query_str]


def node(node_id: str, path: str = "", page: int | None = None) -> TextNode:
    metadata = {"file_path": path} if path else {}
    if page is not None:
        metadata["page"] = page
    return TextNode(id_=node_id, text=node_id, metadata=metadata)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_metrics_worked_out_by_hand(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    x, y = str(folder / "docs" / "x.txt"), str(folder / "docs" / "y.pdf")
    qrels = write(folder / "qrels.jsonl", [
        {"query": "first", "relevant": ["docs/x.txt", "docs/y.pdf"]},   # relative to the qrels file
        {"query": "second", "relevant": ["n-z"]},                        # a node id, never found
        {"query": "third", "relevant": ["docs/y.pdf#page=2", "n-q"]},    # one page of a PDF, and a node id
    ])
    retriever = FixedRetriever({
        # x first found at rank 2; y at rank 4 (its second chunk at rank 5 is the same find)
        "first": [node("a"), node("x1", x), node("b"), node("y1", y, page=1), node("y2", y, page=3)],
        "second": [node("a"), node("b")],
        # page 1 of y is not the relevant page; page 2 at rank 3; n-q at rank 1
        "third": [node("n-q"), node("y1", y, page=1), node("y2", y, page=2)],
    })
    result = evaluate(retriever, qrels, k=3)
    first, second, third = result.per_query
    assert first.ranks == (2, 4) and second.ranks == () and third.ranks == (1, 3)
    assert first.recall == 0.5  # only x within the top 3
    assert first.ndcg == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert first.mrr == 0.5
    assert (second.recall, second.ndcg, second.mrr) == (0.0, 0.0, 0.0)
    assert third.recall == 1.0 and third.mrr == 1.0
    assert third.ndcg == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert result.recall == pytest.approx(1.5 / 3) and result.mrr == pytest.approx(1.5 / 3)
    assert result.ndcg == pytest.approx((first.ndcg + third.ndcg) / 3)
    assert result.queries == 3 and result.skipped == 0
    assert result.to_dict()["recall@3"] == result.recall and "ndcg@10" in result.to_dict()


def test_a_query_a_mode_cant_run_scores_zero_and_is_counted(tmp_path: Path) -> None:
    picture = tmp_path / "q.png"
    picture.write_bytes(b"not read by this retriever")
    qrels = write(tmp_path / "q.jsonl", [{"image": "q.png", "relevant": ["a"]}, {"query": "t", "relevant": ["a"]}])
    result = evaluate(FixedRetriever({"t": [node("a")]}, mode="sparse"), qrels)
    assert result.skipped == 1 and result.per_query[0].skipped and result.recall == 0.5


@pytest.mark.parametrize("line, reason", [
    ("not json", "is not JSON"),
    ('{"relevant": ["a"]}', "give 'query' text"),
    ('{"query": "x"}', "'relevant' must be a list"),
    ('{"query": "x", "relevant": [3]}', "non-empty string"),
    ('{"query": "x", "relevant": ["a"], "mode": "dense"}', "unknown keys \\['mode'\\]"),
    ('{"image": "missing.png", "relevant": ["a"]}', "does not exist"),
    ('{"query": "x", "relevant": ["a.pdf#page=0"]}', "#page=N"),
    ('{"query": "x", "image": "a.png", "audio": "b.wav", "relevant": ["a"]}', "one example per query"),
])
def test_bad_qrels_lines_are_named(tmp_path: Path, line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        parse_qrels(['{"query": "fine", "relevant": ["a"]}', line], tmp_path, "q.jsonl")
    assert "q.jsonl line 2" in str(err.value)
    with pytest.raises(ValueError, match="holds no queries"):
        parse_qrels(["", "  "], tmp_path)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        evaluate(FixedRetriever({}), [], k=0)


def test_agrees_with_llamaindex_retriever_evaluator(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from llama_index.core.evaluation import RetrieverEvaluator

    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore, build_pipeline

    rng = np.random.default_rng(5)
    words = "red blue green lamp valve pump river stone glass paper cloud engine".split()
    texts = [" ".join(rng.choice(words, size=4)) for _ in range(14)]
    embedding = MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")
    nodes = embedding([TextNode(id_=f"n{i}", text=t) for i, t in enumerate(texts)])
    store = MultimodalQdrantStore(path=str(tmp_path / "store"))
    store.add(nodes)
    retriever = Replayed(build_pipeline(store, embedding, top_k=10, mode="hybrid"))
    rows = [{"query": " ".join(rng.choice(words, size=2)), "relevant": [f"n{j}" for j in rng.choice(14, size=3, replace=False)]}
            for _ in range(6)]
    qrels = load_qrels(write(tmp_path / "q.jsonl", rows))
    ours = evaluate(retriever, qrels, k=10)
    evaluator = RetrieverEvaluator.from_metric_names(["recall", "ndcg", "mrr"], retriever=retriever)
    for row, mine in zip(rows, ours.per_query):
        theirs = evaluator.evaluate(query=row["query"], expected_ids=row["relevant"]).metric_vals_dict
        assert mine.recall == pytest.approx(theirs["recall"])
        assert mine.ndcg == pytest.approx(theirs["ndcg"])
        assert mine.mrr == pytest.approx(theirs["mrr"])
    assert any(m.recall for m in ours.per_query)
    store.close()
