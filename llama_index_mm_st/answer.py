"""Retrieved nodes as an answering chat LLM should see them: images as image blocks, with their words.

LlamaIndex's ``ImageNode.get_content_blocks`` gives an image block but drops the node's text (a
caption, a PDF page's words), and it loads the image its own way (any URL, no size limit).
``ImageAnswerBlocks`` wraps each retrieved image node in an ``AnswerImageNode`` whose blocks are
the image, loaded like everywhere else in this package (``inputs.node_image_ref``: inline data,
path or PDF page render, and a URL only under the same opt-in and limits as the embedding's), then
its words. Text nodes pass unchanged.
"""

from __future__ import annotations

import base64
import warnings
from io import BytesIO
from typing import List, Optional

from llama_index.core.base.llms.types import ImageBlock, TextBlock
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, NodeWithScore, QueryBundle

from .errors import ImageLoadError
from .fetch import FetchOptions
from .images import DecodeOptions
from .inputs import node_image_ref


class AnswerImageNode(ImageNode):
    """An ``ImageNode`` whose content blocks are its image (loaded by this package's rules) and its words.

    ``ImageAnswerBlocks`` loads the image (under its URL policy) into ``image`` as PNG data; a node
    whose image could not be loaded keeps its reference and says so in a text block."""

    @classmethod
    def class_name(cls) -> str:
        return "AnswerImageNode"

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list:
        blocks: list = list(self.get_metadata_content_blocks(metadata_mode))
        ref = node_image_ref(self)
        if ref is not None:
            try:
                buffer = BytesIO()
                ref.load().save(buffer, format="PNG")
                blocks.append(ImageBlock(image=buffer.getvalue(), image_mimetype="image/png"))
            except ImageLoadError as exc:  # one unreadable image must not lose the answer: say so instead
                warnings.warn(f"answering without an image: {exc}", RuntimeWarning, stacklevel=2)
                blocks.append(TextBlock(text=f"[image not available: {exc}]"))
        words = self.get_content(metadata_mode=MetadataMode.NONE)
        if words:
            blocks.append(TextBlock(text=words))
        return blocks


def for_answer(node: BaseNode, fetch: FetchOptions = FetchOptions()) -> BaseNode:
    """A new ``AnswerImageNode`` with the same fields for an image node, its image loaded now under
    ``fetch`` (so a URL follows the caller's opt-in); any other node unchanged."""
    if not isinstance(node, ImageNode) or isinstance(node, AnswerImageNode):
        return node
    fields = {name: getattr(node, name) for name in ImageNode.model_fields}
    ref = node_image_ref(node)
    if ref is not None:
        try:
            buffer = BytesIO()
            ref.load(DecodeOptions(), fetch).save(buffer, format="PNG")
            fields.update(image=base64.b64encode(buffer.getvalue()).decode(), image_mimetype="image/png")
        except ImageLoadError:
            pass  # get_content_blocks tries again and puts the reason in a text block for the LLM
    return AnswerImageNode(**fields)


class ImageAnswerBlocks(BaseNodePostprocessor):
    """Node postprocessor for multimodal answers: image nodes become ``AnswerImageNode``s (new objects).

    ``fetch`` is the URL policy for images stored by URL (the pipeline passes the embedding's)."""

    _fetch: FetchOptions = PrivateAttr(default_factory=FetchOptions)

    def __init__(self, fetch: FetchOptions = FetchOptions(), **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._fetch = fetch

    @classmethod
    def class_name(cls) -> str:
        return "ImageAnswerBlocks"

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        return [item.model_copy(update={"node": for_answer(item.node, self._fetch)}) for item in nodes]  # keeps RerankedNode fields
