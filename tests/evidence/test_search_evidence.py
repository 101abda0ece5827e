"""Evidence through the search step: the library (``search(..., evidence=True)``), ``mmst search
--evidence`` (JSON, the table, ``--crops``) and ``/v1/search`` with ``"evidence": true`` give the same
evidence for the same hits."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from llama_index_mm_st.evidence.boxes import iou
from tests.fixtures.evidence import pasted, pdf_with_lines

TEXT = ("The committee met on a grey morning. Several members asked for more time. The spare impeller for "
        "the quokka pump sits on shelf nine. Coffee was served in the hall.")
SENTENCE = "The spare impeller for the quokka pump sits on shelf nine."


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_clip_dir):
    """An index built by ``mmst index`` over a scene (a picture pasted in), a PDF and a text file."""
    from llama_index_mm_st.cli import main

    root = tmp_path_factory.mktemp("evidence_cli")
    folder = root / "files"
    folder.mkdir()
    scene, query, target = pasted(11, (240, 180), (80, 60), (140, 20))
    scene.save(folder / "scene.png")
    pasted(12, (200, 150), (50, 50), (0, 0))[0].save(folder / "other.png")
    pdf_with_lines(folder / "report.pdf", ["Quarterly report", "The zanzibar account closed", "Costs were flat"])
    (folder / "notes.txt").write_text(TEXT + "\n")
    query.save(root / "query.png")
    store = root / "index"
    assert main(["index", str(folder), "--store", str(store), "--model", str(tiny_clip_dir),
                 "--backend", "torch", "--precision", "fp32"]) == 0
    return {"store": store, "query": root / "query.png", "target": target, "root": root}


def _cli(capsys, *argv: str) -> str:
    from llama_index_mm_st.cli import main

    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _rows(capsys, indexed, *query: str) -> list[dict]:
    return json.loads(_cli(capsys, "search", *query, "--store", str(indexed["store"]), "--evidence", "--json",
                           "--top-k", "3", "--backend", "torch", "--precision", "fp32"))


def test_cli_json_rows_carry_evidence(capsys, indexed):
    rows = _rows(capsys, indexed, "--image", str(indexed["query"]))
    assert rows[0]["source"].endswith("scene.png")
    region = rows[0]["evidence"][0]
    assert set(region) == {"kind", "box", "page", "score"} and region["kind"] == "region"
    assert iou(region["box"], indexed["target"]) >= 0.5
    words = _rows(capsys, indexed, "zanzibar quokka")
    by_source = {Path(row["source"]).name: row for row in words}
    page = by_source["report.pdf"]["evidence"][0]
    assert page["kind"] == "region" and page["page"] == 1
    passage = next(p for p in by_source["notes.txt"]["evidence"] if p["kind"] == "passage")
    text = by_source["notes.txt"]["text"]
    assert SENTENCE in text[passage["start"]:passage["end"]]


def test_rows_without_the_flag_have_no_evidence(capsys, indexed):
    rows = json.loads(_cli(capsys, "search", "zanzibar", "--store", str(indexed["store"]), "--json", "--top-k", "2"))
    assert rows and all("evidence" not in row for row in rows)


def test_the_table_shows_regions_and_crops_are_written(capsys, indexed):
    crops = indexed["root"] / "crops"
    out = _cli(capsys, "search", "zanzibar", "--store", str(indexed["store"]), "--crops", str(crops), "--top-k", "3",
               "--backend", "torch", "--precision", "fp32")
    assert "evidence: page 1, (" in out
    written = sorted(crops.iterdir())
    assert written and all(path.suffix == ".png" for path in written)
    assert any(f"-> {path}" in out for path in written)
    from PIL import Image

    with Image.open(written[0]) as image:
        assert image.size[0] > image.size[1]  # a line of text: wider than tall


def test_the_server_returns_the_cli_evidence(capsys, indexed, tiny_clip_dir):
    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, ServeSettings, create_app
    from tests.serve.conftest import running_server

    cli_image = _rows(capsys, indexed, "--image", str(indexed["query"]))
    cli_words = _rows(capsys, indexed, "zanzibar quokka")
    embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="torch", precision="fp32")
    store = MultimodalQdrantStore("mmst", path=str(indexed["store"]))
    try:
        app = create_app(Components(embedding, None, store), ServeSettings())
        uri = "data:image/png;base64," + base64.b64encode(indexed["query"].read_bytes()).decode()
        with running_server(app) as base:
            by_image = httpx.post(base + "/v1/search", json={"image": uri, "top_k": 3, "evidence": True}, timeout=60)
            by_words = httpx.post(base + "/v1/search", json={"query": "zanzibar quokka", "top_k": 3, "evidence": True},
                                  timeout=60)
    finally:
        store.close()
    for served, cli in ((by_image.json()["results"], cli_image), (by_words.json()["results"], cli_words)):
        # the same hits (RRF ties between the image and text lists may be ordered either way)
        assert sorted(row["id"] for row in served) == sorted(row["id"] for row in cli)
        wanted = {row["id"]: row for row in cli}
        for got in served:
            want = wanted[got["id"]]
            assert len(got["evidence"]) == len(want["evidence"])
            for a, b in zip(got["evidence"], want["evidence"]):
                assert {k: v for k, v in a.items() if k != "score"} == {k: v for k, v in b.items() if k != "score"}
                assert a["score"] == pytest.approx(b["score"], abs=1e-4)
