"""Video as timestamped frames, for image-only models (CLIP, SigLIP).

A video document becomes one ``ImageNode`` per sampled frame. The node points at the video
(``image_path``) and says when (``frame_time_s`` in its metadata), so it holds no pixels: the frame is
decoded when it is embedded (``inputs`` reads such a node as an image whose source is that frame).
Each frame is a point of its own, so a search returns the moment in the video, not just the file.

Sampling is by time: one frame every ``every_s`` seconds from 0 s (default 2 s), at most
``max_frames`` per video (spread over the whole video when more would be due). It costs one image
embedding per frame: a 10-minute video at the default is 300 frames, about what 300 photos cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from llama_index.core.bridge.pydantic import Field
from llama_index.core.schema import BaseNode, ImageNode, NodeRelationship, TransformComponent

from ..docs import document_parameters
from ..strict import RefusesUnknownFields
from ..ids import frame_id
from ..media import MediaInfo, frame_times
from ..media_refs import FRAME_TIME_KEY, node_media_ref
from .media_reader import MEDIA_BOOKKEEPING_KEYS
from .metadata import BOOKKEEPING_KEYS, LLM_NOISE_KEYS

DEFAULT_EVERY_S = 2.0
DEFAULT_MAX_FRAMES = 600


def frame_nodes(document: BaseNode, every_s: float = DEFAULT_EVERY_S,
                max_frames: int = DEFAULT_MAX_FRAMES) -> list[ImageNode]:
    """The frame nodes of one video document (an empty list for anything that is not a video).

    Timestamps come from the duration the reader recorded (``duration_s``); ids are
    ``ids.frame_id(document id, frame index)``, so re-reading the video gives the same points.
    """
    ref = node_media_ref(document)
    if ref is None or ref.kind != "video" or not isinstance(ref.source, (str, Path)):
        return []
    duration = float(document.metadata.get("duration_s") or 0.0)
    times = frame_times(MediaInfo("video", duration), every_s, max_frames)
    words = document.get_content(metadata_mode=_none())
    source = {NodeRelationship.SOURCE: document.as_related_node_info()}
    keys = list(dict.fromkeys([*BOOKKEEPING_KEYS, *MEDIA_BOOKKEEPING_KEYS, FRAME_TIME_KEY, "frame_index"]))
    nodes = []
    for index, seconds in enumerate(times):
        metadata = dict(document.metadata) | {FRAME_TIME_KEY: seconds, "frame_index": index}
        nodes.append(ImageNode(
            id_=frame_id(document.node_id, index), image_path=str(ref.source), text=words if index == 0 else "",
            metadata=metadata, excluded_embed_metadata_keys=keys,
            excluded_llm_metadata_keys=list(dict.fromkeys([*LLM_NOISE_KEYS, FRAME_TIME_KEY, "frame_index"])),
            relationships=dict(source),
        ))
    return nodes


def _none() -> Any:
    from llama_index.core.schema import MetadataMode

    return MetadataMode.NONE


@document_parameters()
class VideoFrameSampler(RefusesUnknownFields, TransformComponent):
    """An ingestion transformation: video documents become timestamped frame nodes; other nodes pass.

    Use it before an image-only embedding (CLIP, SigLIP) so videos are searchable by their frames.
    The first frame node keeps the video's transcript as its words (BM25 finds it once per video).
    """

    every_s: float = Field(default=DEFAULT_EVERY_S, gt=0, description="Seconds between sampled frames.")
    max_frames: int = Field(default=DEFAULT_MAX_FRAMES, gt=0, description="Most frames per video.")

    @classmethod
    def class_name(cls) -> str:
        return "VideoFrameSampler"

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in nodes:
            frames = frame_nodes(node, self.every_s, self.max_frames)
            out.extend(frames if frames else [node])
        return out

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
        return self.__call__(nodes, **kwargs)

