"""Rerank fixtures: the tiny models, loaded once per session (builders in tests/rerank/nodes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def cross_encoder(tiny_bert_cross_encoder_dir: Path) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_bert_cross_encoder_dir), device="cpu")


@pytest.fixture(scope="session")
def blip(tiny_blip_itm_dir: Path) -> tuple[Any, Any]:
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    model = BlipForImageTextRetrieval.from_pretrained(str(tiny_blip_itm_dir)).eval()
    return model, BlipProcessor.from_pretrained(str(tiny_blip_itm_dir))


@pytest.fixture(scope="session")
def vlm(tiny_qwen_vl_reranker_dir: Path) -> Any:
    pytest.importorskip("torchvision")
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_qwen_vl_reranker_dir), device="cpu")

