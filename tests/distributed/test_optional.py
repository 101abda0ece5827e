"""Ray stays optional: nothing imports it until a Ray job runs, and its absence is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_ray_import_without_ray_and_a_named_extra_when_missing(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import llama_index_mm_st, llama_index_mm_st.cli.main, llama_index_mm_st.distributed
        assert "ray" not in sys.modules, "importing the package imported ray"
        sys.modules["ray"] = None  # as if the [ray] extra were not installed
        from llama_index_mm_st.errors import MissingDependencyError
        from llama_index_mm_st.distributed._ray import require_ray
        try:
            require_ray()
        except MissingDependencyError as exc:
            assert "[ray]" in str(exc), exc
        else:
            raise AssertionError("no MissingDependencyError")
        from llama_index_mm_st.cli import main
        code = main(["index", {str(tmp_path)!r}, "--store", {str(tmp_path / 's')!r}, "--ray"])
        assert code == 1
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's package, whatever is installed
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "llama-index-mm-st[ray]" in done.stderr
