"""Readers: images, folders, URLs, bytes and PDF pages into ``ImageDocument``s that point at their pixels;
audio and video files into ``Document``s that point at their media (``MediaReader``), and videos into
timestamped frame nodes for image-only models (``VideoFrameSampler``).

The folder walker and the bookkeeping-key lists are public here because ``mmst index`` walks once
for images, PDFs and text with the same rules as ``ImageReader``.
"""

from ..errors import CaptionFileError
from .cache import default_cache_dir
from .formats import supported_extensions
from .metadata import BOOKKEEPING_KEYS, LLM_NOISE_KEYS
from .frames import VideoFrameSampler, frame_nodes
from .media_reader import MEDIA_SUFFIXES, MediaReader, is_transcript_sidecar
from .reader import ImageReader
from .report import IgnoredPath, ReadReport
from .walk import NO_EXTENSION, WalkedFile, WalkPolicy, WalkTally, walk_path

__all__ = [
    "BOOKKEEPING_KEYS",
    "CaptionFileError",
    "IgnoredPath",
    "ImageReader",
    "LLM_NOISE_KEYS",
    "MEDIA_SUFFIXES",
    "MediaReader",
    "NO_EXTENSION",
    "ReadReport",
    "VideoFrameSampler",
    "WalkPolicy",
    "WalkTally",
    "WalkedFile",
    "default_cache_dir",
    "frame_nodes",
    "is_transcript_sidecar",
    "supported_extensions",
    "walk_path",
]
