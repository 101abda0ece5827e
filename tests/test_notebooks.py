"""The notebooks run top to bottom against the tiny fixture models (their env vars choose models)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} == {"quickstart.ipynb", "hybrid_search.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, tmp_path, tiny_clip_dir, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir):
    monkeypatch.setenv("MMST_MODEL", str(tiny_clip_dir))
    monkeypatch.setenv("MMST_RERANKERS", f"{tiny_bert_cross_encoder_dir},{tiny_blip_itm_dir}")
    monkeypatch.setenv("MMST_DATA", str(ROOT / "examples" / "data"))
    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o for o in outputs if "text/html" in o.get("data", {}) or "text/markdown" in o.get("data", {})]
    assert html, "the notebook displays its results"


def test_a_notebook_offline_without_local_models_fails_at_once_in_one_line(monkeypatch, tmp_path):
    """The real models are the default: offline and uncached, the first model cell raises the library's
    one-line ModelUnavailableError (it used to retry the hub for minutes)."""
    from nbclient.exceptions import CellExecutionError

    for name in ("MMST_MODEL", "MMST_RERANKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setenv("MMST_DATA", str(ROOT / "examples" / "data"))
    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    path = ROOT / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    with pytest.raises(CellExecutionError) as failed:
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    assert "ModelUnavailableError" in str(failed.value)
    assert "cannot load model 'openai/clip-vit-base-patch32': HF_HUB_OFFLINE is set" in str(failed.value)
