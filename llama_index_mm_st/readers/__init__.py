"""Readers: images, folders, URLs, bytes and PDF pages into ``ImageDocument``s that point at their pixels."""

from .cache import default_cache_dir
from .formats import supported_extensions
from ..errors import CaptionFileError
from .reader import ImageReader
from .report import IgnoredPath, ReadReport

__all__ = ["CaptionFileError", "IgnoredPath", "ImageReader", "ReadReport", "default_cache_dir", "supported_extensions"]
