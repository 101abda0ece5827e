"""Which files the reader takes: the image formats Pillow can open here, plus PDF.

HEIC/HEIF come from the optional ``pillow-heif`` plugin (extra ``heif``), registered with Pillow the
first time the reader needs the list; AVIF is built into current Pillow wheels.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF")
PDF_EXTENSIONS = frozenset({".pdf"})


def register_heif() -> bool:
    """Register pillow-heif's opener if it is installed; True when HEIF files can be read."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) of the image formats Pillow can open in this environment."""
    register_heif()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in IMAGE_FORMATS)


def supported_extensions() -> frozenset[str]:
    return image_extensions() | PDF_EXTENSIONS
