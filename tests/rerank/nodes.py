"""Node builders for rerank tests."""

from __future__ import annotations

import base64
from pathlib import Path

from llama_index.core.schema import ImageNode, NodeWithScore, TextNode

TEXTS = [
    "red car in the city at night",
    "a cat photo",
    "the cat sits on a tree in the garden",
    "blue river with a boat",
    "quarter revenue table and chart",
    "dog",
]


def text_nodes(texts: list[str] = TEXTS, first_score: float = 0.9) -> list[NodeWithScore]:
    """Text nodes with descending retrieval scores."""
    return [NodeWithScore(node=TextNode(text=t), score=first_score - 0.01 * i) for i, t in enumerate(texts)]


def image_node(path: Path, score: float = 0.5, text: str = "", inline: bool = False) -> NodeWithScore:
    """An ImageNode by path, or with the file inline as base64 (``inline=True``)."""
    if inline:
        node = ImageNode(image=base64.b64encode(path.read_bytes()).decode(), text=text)
    else:
        node = ImageNode(image_path=str(path), text=text)
    return NodeWithScore(node=node, score=score)
