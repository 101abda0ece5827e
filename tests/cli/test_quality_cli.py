"""``mmst`` search-quality commands end to end on the mixed test folder: ``index --sparse-model``,
``search --mmr/--max-per-document/--fusion/--weight``, ``info --recall`` and ``eval`` (its figures
worked out by hand from ``mmst search --json`` for the same queries)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.cli.conftest import RARE_TEXT, make_corpus


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, image_files: dict, broken_images: dict, tiny_clip_dir: Path,
            tiny_splade_dir: Path) -> tuple[Path, Path]:
    """The mixed folder indexed once for this module, with a learned sparse model beside BM25."""
    from llama_index_mm_st.cli import main

    root = tmp_path_factory.mktemp("quality_cli")
    corpus, store = make_corpus(root / "corpus", image_files, broken_images), root / "index"
    assert main(["index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress",
                 "--sparse-model", str(tiny_splade_dir)]) == 0
    return corpus, store


@pytest.fixture()
def index(indexed: tuple[Path, Path]) -> Path:
    return indexed[1]


def search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_index_with_a_sparse_model_and_info(run_cli, index: Path, tiny_splade_dir: Path) -> None:
    code, out, err = run_cli("info", "--store", str(index), "--recall")
    assert code == 0, err
    assert f"word vectors: BM25 + learned ({tiny_splade_dir.resolve()})" in out
    assert "recall@10 at hnsw_ef=128" in out and "text 1.000" in out
    sparse = search(run_cli, index, RARE_TEXT, "--mode", "sparse")
    assert sparse[0]["source"].endswith("notes.txt") and {r["score_kind"] for r in sparse} == {"rrf"}  # two word lists


def test_search_quality_flags(run_cli, index: Path) -> None:
    diverse = search(run_cli, index, "quarterly revenue", "--top-k", "6", "--mmr", "0.3")
    pool = search(run_cli, index, "quarterly revenue", "--top-k", "30")  # MMR picks from the fused candidates
    assert len(diverse) == 6 and {r["score_kind"] for r in diverse} == {"mmr"}
    assert {r["id"] for r in diverse} <= {r["id"] for r in pool}
    one = search(run_cli, index, "quarterly revenue", "--top-k", "6", "--max-per-document", "1")
    assert len({r["source"] for r in one}) == len(one)  # the PDF's two pages count as one file
    fused = search(run_cli, index, "quarterly revenue", "--fusion", "dbsf")
    assert {r["score_kind"] for r in fused} == {"dbsf"}
    weighted = search(run_cli, index, "QX-7731", "--weight", "bm25=5,learned=0,text=0.1", "--rrf-k", "10")
    # BM25's first hit at weight 5 and k=10 scores 1 / ((0 + 1) / 5 + 10 - 1), whatever it adds from the others
    assert weighted[0]["source"].endswith("notes.txt") and weighted[0]["score"] >= 1 / (1 / 5 + 9) - 1e-6
    code, out, _ = run_cli("search", "quarterly revenue", "--store", str(index), "--mmr", "0.5", "--top-k", "3")
    assert code == 0 and out.splitlines()[0].split()[1:3] == ["MMR", "cos"]


@pytest.mark.parametrize("args, message", [
    (("--mmr", "1.5"), "--mmr: MMR's lambda must be between 0 and 1"),
    (("--mmr", "0.5", "--mode", "sparse"), "--mmr: MMR compares"),
    (("--weight", "text"), "NAME=NUMBER"),
    (("--weight", "smell=1"), "--weight: rrf_weights keys must be among"),
    (("--weight", "image=nan"), "--weight: rrf_weights['image'] must be a finite number >= 0"),
    (("--weight", "text=1", "--fusion", "dbsf"), "--weight: weights apply to RRF"),
    (("--max-per-document", "0"), "--max-per-document: must be at least 1"),
    (("--rrf-k", "0"), "--rrf-k: must be an integer from 1"),
    (("--top-k", "0"), "--top-k: must be an integer of at least 1"),
])
def test_bad_quality_flags_are_one_line(run_cli, index: Path, args: tuple, message: str) -> None:
    code, _, err = run_cli("search", "quarterly revenue", "--store", str(index), *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_no_bm25_needs_a_sparse_model(run_cli, corpus: Path, tmp_path: Path, tiny_clip_dir: Path) -> None:
    code, _, err = run_cli("index", str(corpus), "--store", str(tmp_path / "i"), "--model", str(tiny_clip_dir),
                           "--no-bm25")
    assert code == 1 and "give --sparse-model" in err


def by_hand(rows: list[dict], relevant: set[str], k: int = 10) -> tuple[float, float, float]:
    """recall@k, nDCG@10, MRR@10 from a search's JSON rows: each relevant file counted at its first rank."""
    first: dict[str, int] = {}
    for row in rows:
        if row["source"] in relevant and row["source"] not in first:
            first[row["source"]] = row["rank"]
    ranks = sorted(first.values())
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), 10) + 1))
    return (sum(r <= k for r in ranks) / len(relevant), sum(1 / math.log2(r + 1) for r in ranks if r <= 10) / ideal,
            1 / ranks[0] if ranks and ranks[0] <= 10 else 0.0)


def test_eval_matches_figures_worked_out_from_search(run_cli, indexed: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, index = indexed
    queries = [("QX-7731 valve", ["notes.txt"]), ("quarterly revenue", ["report.pdf", "guide.md"]),
               ("round circles and squares", ["guide.md"])]
    qrels = tmp_path / "set" / "qrels.jsonl"
    qrels.parent.mkdir()
    relative = Path(os.path.relpath(corpus, qrels.parent))  # relative to the qrels file's folder
    qrels.write_text("\n".join(json.dumps({"query": q, "relevant": [str(relative / name) for name in names]})
                               for q, names in queries) + "\n")
    code, out, err = run_cli("eval", str(qrels), "--store", str(index), "--json", "--k", "5")
    assert code == 0, err
    report = json.loads(out)
    assert report["queries"] == 3 and [r["mode"] for r in report["rows"]] == ["dense", "sparse", "hybrid"]
    for row in report["rows"]:
        # Each figure is what `mmst search` shows: recall@5 from --top-k 5, nDCG@10 and MRR@10 from --top-k 10.
        wanted = [{str((corpus / name).resolve()) for name in names} for _, names in queries]
        figures = [by_hand(search(run_cli, index, q, "--mode", row["mode"], "--top-k", "10"), relevant, k=5)
                   for (q, _), relevant in zip(queries, wanted)]
        at_5 = [by_hand(search(run_cli, index, q, "--mode", row["mode"], "--top-k", "5"), relevant, k=5)[0]
                for (q, _), relevant in zip(queries, wanted)]
        assert row["recall@5"] == pytest.approx(sum(at_5) / 3)
        assert row["ndcg@10"] == pytest.approx(sum(f[1] for f in figures) / 3)
        assert row["mrr@10"] == pytest.approx(sum(f[2] for f in figures) / 3)
        assert row["skipped"] == 0 and row["rerank"] is None
    sparse = next(r for r in report["rows"] if r["mode"] == "sparse")
    assert sparse["mrr@10"] >= 1 / 3  # the part number is found first by its words
    code, out, err = run_cli("eval", str(qrels), "--store", str(index), "--mode", "hybrid")
    assert code == 0 and out.splitlines()[0] == "3 queries" and out.splitlines()[1].split()[:3] == ["mode", "rerank", "recall@10"]
    code, _, err = run_cli("eval", str(tmp_path / "missing.jsonl"), "--store", str(index))
    assert code == 1 and "no qrels file" in err
