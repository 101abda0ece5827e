"""``images.open_checked`` from many threads at once, as the decode workers call it."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from llama_index_mm_st.images import open_checked
from tests.fixtures.images import png_header_only


def test_concurrent_opens_neither_leak_pil_warnings_nor_change_the_callers_filters(tmp_path: Path) -> None:
    # 100M pixels: over PIL's warning threshold (89M), under its error threshold, under our limit.
    big = png_header_only(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters_before = list(warnings.filters)

        def open_size(_: int) -> tuple[int, int]:
            with open_checked(big, "big.png", max_pixels=200_000_000) as image:
                return image.size

        with ThreadPoolExecutor(max_workers=8) as pool:
            sizes = list(pool.map(open_size, range(400)))
        assert sizes == [(10_000, 10_000)] * 400
        assert warnings.filters == filters_before
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
