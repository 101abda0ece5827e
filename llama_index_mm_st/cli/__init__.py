"""The ``mmst`` command line: ``index``, ``search`` and ``info``.

Built on the components' public interfaces (``llama_index_mm_st``, ``llama_index_mm_st.readers``)
and the base layer's ids, errors and file checks; never on a component's internals.
"""

from .main import main

__all__ = ["main"]
