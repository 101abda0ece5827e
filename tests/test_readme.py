"""README truth: every Python block runs against the fixture models, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _marked(name: str) -> str:
    block = re.search(rf"<!-- {name} -->\n```bash\n(.*?)\n```\n<!-- /{name} -->", README, flags=re.S)
    assert block, f"README has no {name} block"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = _marked("test-command")
    assert "pytest" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci and "torch==2.14.1" in ci and "torchvision==0.29.1" in ci


def test_main_command_indexes_and_searches():
    command = _marked("main-command")
    assert "mmst index" in command and "mmst search" in command


def test_readme_has_python_examples():
    assert len(PYTHON_BLOCKS) >= 3


def test_inline_splitter_advice_runs_as_written():
    """Inline advice is code too: every ``SentenceSplitter(...)`` the prose suggests can be built."""
    from llama_index.core.node_parser import SentenceSplitter

    calls = re.findall(r"`(SentenceSplitter\([^`]*\))`", README)
    assert calls
    for call in calls:
        eval(call, {"SentenceSplitter": SentenceSplitter})  # noqa: S307 - the README's own text


def test_readme_names_the_notebooks():
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"notebooks/{notebook.name}" in README


def _runnable(index: int, tmp_path: Path, clip: Path, cross_encoder: Path, blip: Path, clap: Path | None = None,
              colqwen2: Path | None = None, server: str | None = None) -> str:
    """README block ``index`` with fixture models, a temporary index and a recording chat LLM for OpenAI."""
    code = PYTHON_BLOCKS[index]
    served_by_name = "OpenAI(base_url=" in code  # as written: the server answers to the hub id (--served-model-name)
    replacements = {
        '"openai/clip-vit-base-patch32"': repr(str(clip)),
        '"cross-encoder/ms-marco-MiniLM-L-6-v2"': repr(str(cross_encoder)),
        '"Salesforce/blip-itm-base-coco"': repr(str(blip)),
        '"laion/clap-htsat-unfused"': repr(str(clap)),
        '"vidore/colqwen2-v1.0"': repr(str(colqwen2)),
        '"./index"': repr(str(tmp_path / "index")),
        "from llama_index.llms.openai import OpenAI": "from tests.test_answer import RecordingChatLLM as OpenAI",
        'OpenAI(model="gpt-4o-mini")': "OpenAI()",
        "http://gpu-box:7997": str(server),  # the serving blocks: a real server on 127.0.0.1
    }
    if served_by_name:
        del replacements['"openai/clip-vit-base-patch32"']
    for real, fixture in replacements.items():
        code = code.replace(real, fixture)
    return code


@pytest.fixture(scope="module")
def readme_server(tiny_clip_dir, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir, tmp_path_factory):  # type: ignore[no-untyped-def]
    """What the README's serving section starts with ``mmst serve --store ... --rerank ... --rerank ...``, on
    127.0.0.1 (an empty index of its own, which the documents and RemoteMultimodalStore blocks fill)."""
    pytest.importorskip("fastapi")
    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore, MultimodalReranker
    from llama_index_mm_st.serve import Components, ServeSettings, create_app
    from tests.serve.conftest import running_server

    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    reranker = MultimodalReranker([str(tiny_bert_cross_encoder_dir), str(tiny_blip_itm_dir)], device="cpu",
                                  precision="fp32", on_unsupported="keep")
    store = MultimodalQdrantStore("mmst", path=str(tmp_path_factory.mktemp("readme_served") / "index"))
    # A local model served under the hub id the README's clients send (mmst serve --served-model-name).
    settings = ServeSettings(model_id="openai/clip-vit-base-patch32")
    with running_server(create_app(Components(embedding, reranker, store), settings)) as base:
        yield base
    store.close()


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, tiny_clip_dir, tiny_bert_cross_encoder_dir,
                                  tiny_blip_itm_dir, tiny_clap_dir, request):
    colqwen2 = request.getfixturevalue("tiny_colqwen2_dir") if "vidore/" in PYTHON_BLOCKS[index] else None
    server = request.getfixturevalue("readme_server") if "http://gpu-box:7997" in PYTHON_BLOCKS[index] else None
    code = _runnable(index, tmp_path, tiny_clip_dir, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir, tiny_clap_dir,
                     colqwen2, server)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    exec(compile(code, f"README block {index}", "exec"), {"__name__": "__readme__"})


def test_quick_start_twice_leaves_the_same_points(tmp_path, monkeypatch, tiny_clip_dir, tiny_bert_cross_encoder_dir,
                                                  tiny_blip_itm_dir):
    """The first Python block writes a persistent index; running it again must not add copies."""
    from llama_index_mm_st import MultimodalQdrantStore

    code = _runnable(0, tmp_path, tiny_clip_dir, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir)
    assert str(tmp_path / "index") in code
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    counts = []
    for run in range(2):
        exec(compile(code, f"README block 0, run {run}", "exec"), {"__name__": "__readme__"})
        with MultimodalQdrantStore("docs", path=str(tmp_path / "index")) as store:
            counts.append((store.count(), sorted(node.node_id for node in store.get_nodes())))
    assert counts[0][0] > 0 and counts[1] == counts[0]
