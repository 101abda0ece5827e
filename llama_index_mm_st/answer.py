"""Retrieved nodes as an answering chat LLM should see them: images as image blocks, with their words,
and where a result carries evidence (``evidence.EVIDENCE_KEY``), only the parts that matched.

LlamaIndex's ``ImageNode.get_content_blocks`` gives an image block but drops the node's text (a
caption, a PDF page's words), and it loads the image its own way (any URL, no size limit).
``ImageAnswerBlocks`` wraps each retrieved image node in an ``AnswerImageNode`` whose blocks are,
loaded like everywhere else in this package (``inputs.node_image_ref``: inline data, path or PDF page
render, and a URL only under the same opt-in and limits as the embedding's):

- with evidence regions: each region cut out at full resolution (a text block names its box and page,
  so the answer can cite it), then the whole image downscaled to ``context_px`` on its longer side
  for context (None: no context image); a few hundred image tokens instead of a whole page's;
- without: the whole image, as before;

then its words. An audio or video result with evidence spans goes as the matched span
(``AudioBlock`` WAV / ``VideoBlock`` MP4) when ``media`` is on (for LLMs that read them), else its
words with the span named. Text nodes pass unchanged. The answer's source nodes keep the evidence
in their metadata, so a UI can highlight the box or play the span.
"""

from __future__ import annotations

import base64
import warnings
from io import BytesIO
from typing import Any, List, Optional

from llama_index.core.base.llms.types import AudioBlock, ImageBlock, TextBlock, VideoBlock
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from PIL import Image

from .errors import ImageLoadError, ItemError
from .fetch import FetchOptions
from .images import DecodeOptions
from .inputs import node_image_ref, read_node, to_image_node

DEFAULT_CONTEXT_PX = 256
"""The longer side of the downscaled whole image sent beside the crops of its regions."""


def _png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _where(piece: Any) -> str:
    from .evidence import describe

    return describe(piece)


class AnswerImageNode(ImageNode):
    """An ``ImageNode`` whose content blocks are its image, or the crops of its evidence regions and a
    small view of the whole (``ImageAnswerBlocks`` prepares them), then its words.

    A node whose image could not be loaded keeps its reference and says so in a text block."""

    _pictures: list = PrivateAttr(default_factory=list)
    """(caption, PNG bytes) prepared by ``for_answer``: what is sent instead of the whole image."""

    @classmethod
    def class_name(cls) -> str:
        return "AnswerImageNode"

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list:
        blocks: list = list(self.get_metadata_content_blocks(metadata_mode))
        if self._pictures:
            for caption, data in self._pictures:
                if caption:
                    blocks.append(TextBlock(text=caption))
                blocks.append(ImageBlock(image=data, image_mimetype="image/png"))
        else:
            ref = node_image_ref(self)
            if ref is not None:
                try:
                    blocks.append(ImageBlock(image=_png(ref.load()), image_mimetype="image/png"))
                except ImageLoadError as exc:  # one unreadable image must not lose the answer: say so instead
                    warnings.warn(f"answering without an image: {exc}", RuntimeWarning, stacklevel=2)
                    blocks.append(TextBlock(text=f"[image not available: {exc}]"))
        words = self.get_content(metadata_mode=MetadataMode.NONE)
        if words:
            blocks.append(TextBlock(text=words))
        return blocks


class AnswerMediaNode(TextNode):
    """A text node for an audio or video result: its matched span (when prepared) and its words."""

    _media: list = PrivateAttr(default_factory=list)
    """Blocks prepared by ``for_answer``: the spans as audio or video, or the text naming them."""

    @classmethod
    def class_name(cls) -> str:
        return "AnswerMediaNode"

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list:
        blocks: list = list(self.get_metadata_content_blocks(metadata_mode))
        blocks.extend(self._media)
        if self.text:
            blocks.append(TextBlock(text=self.text))
        return blocks


def for_answer(node: BaseNode, fetch: FetchOptions = FetchOptions(), context_px: Optional[int] = DEFAULT_CONTEXT_PX,
               media: bool = False) -> BaseNode:
    """The node as the answering LLM gets it (a new node; the given one unchanged): an ``AnswerImageNode``
    for an image node (its regions' crops and a ``context_px`` view when it has evidence regions, else its
    image, loaded now under ``fetch``), an ``AnswerMediaNode`` for audio or video with evidence spans;
    any other node unchanged."""
    from .evidence import Region, Span, node_evidence

    evidence = node_evidence(node)
    parts = read_node(node)
    if not isinstance(node, ImageNode) and parts.image is not None and parts.media is None:
        node = to_image_node(node)  # an ImageDocument (LlamaIndex 0.14 keeps its image in image_resource)
    if isinstance(node, ImageNode) and not isinstance(node, AnswerImageNode):
        return _image_answer(node, [p for p in evidence if isinstance(p, Region)],
                             [p for p in evidence if isinstance(p, Span)], fetch, context_px)
    spans = [p for p in evidence if isinstance(p, Span)]
    if spans and parts.media is not None and not isinstance(node, AnswerMediaNode):
        answer = AnswerMediaNode(**{name: getattr(node, name) for name in TextNode.model_fields if hasattr(node, name)})
        answer._media = _media_blocks(parts.media, spans, fetch, media)
        return answer
    return node


def _image_answer(node: ImageNode, regions: list, spans: list, fetch: FetchOptions,
                  context_px: Optional[int]) -> AnswerImageNode:
    fields = {name: getattr(node, name) for name in ImageNode.model_fields}
    ref = node_image_ref(node)
    pictures: list = []
    if ref is not None:
        try:
            image = ref.load(DecodeOptions(), fetch)
        except ImageLoadError:
            image = None  # get_content_blocks tries again and puts the reason in a text block for the LLM
        if image is not None and regions:
            from .evidence.clips import region_image

            page = node.metadata.get("page")
            what = f"page {page}" if isinstance(page, int) else "the image"
            for number, region in enumerate(regions, start=1):
                pictures.append((f"[region {number} of {what}: {_where(region)}]", _png(region_image(image, region))))
            if context_px:
                small = image.copy()
                small.thumbnail((context_px, context_px))
                pictures.append((f"[{what}, whole, downscaled for context]", _png(small)))
        elif image is not None:
            fields.update(image=base64.b64encode(_png(image)).decode(), image_mimetype="image/png")
    if spans:
        moments = ", ".join(_where(span) for span in spans)
        fields["text"] = (fields.get("text") or "") + ("\n" if fields.get("text") else "") + \
            f"[the match is at {moments} of the video]"
    answer = AnswerImageNode(**fields)
    answer._pictures = pictures
    return answer


def _media_blocks(ref: Any, spans: list, fetch: FetchOptions, media: bool) -> list:
    """The spans as blocks: the audio or video of each (``media``), else text naming them."""
    moments = ", ".join(_where(span) for span in spans)
    blocks: list = [TextBlock(text=f"[the match is at {moments} of this {ref.kind}]")]
    if not media:
        return blocks
    from .evidence.clips import AUDIO_RATE, write_video_clip, write_wav
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="mmst-answer-") as folder:
        for number, span in enumerate(spans, start=1):
            try:
                if ref.kind == "audio":
                    samples = ref.load_audio(AUDIO_RATE, fetch)
                    path = write_wav(Path(folder) / f"span{number}.wav",
                                     samples[int(span.start_s * AUDIO_RATE):int(span.end_s * AUDIO_RATE) + 1], AUDIO_RATE)
                    blocks.append(AudioBlock(audio=path.read_bytes(), format="wav"))
                else:
                    path = write_video_clip(Path(folder) / f"span{number}.mp4", ref, span, fetch)
                    blocks.append(VideoBlock(video=path.read_bytes(), video_mimetype="video/mp4"))
            except ItemError as exc:
                warnings.warn(f"answering without the {ref.kind} span: {exc}", RuntimeWarning, stacklevel=2)
    return blocks


class ImageAnswerBlocks(BaseNodePostprocessor):
    """Node postprocessor for multimodal answers: image nodes become ``AnswerImageNode``s and audio or video
    nodes with spans ``AnswerMediaNode``s (new objects; see ``for_answer``).

    ``fetch`` is the URL policy for images stored by URL (the pipeline passes the embedding's);
    ``context_px`` the longer side of the whole image sent beside its regions' crops (None: none);
    ``media``: send audio and video spans as audio and video blocks (for LLMs that read them)."""

    _fetch: FetchOptions = PrivateAttr(default_factory=FetchOptions)
    _context_px: Optional[int] = PrivateAttr(default=DEFAULT_CONTEXT_PX)
    _media: bool = PrivateAttr(default=False)

    def __init__(self, fetch: FetchOptions = FetchOptions(), context_px: Optional[int] = DEFAULT_CONTEXT_PX,
                 media: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if context_px is not None and context_px < 1:
            raise ValueError(f"context_px must be a positive number of pixels or None, got {context_px}")
        self._fetch, self._context_px, self._media = fetch, context_px, media

    @classmethod
    def class_name(cls) -> str:
        return "ImageAnswerBlocks"

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        return [item.model_copy(update={"node": for_answer(item.node, self._fetch, self._context_px, self._media)})
                for item in nodes]  # keeps RerankedNode fields
