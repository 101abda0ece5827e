"""``python -m llama_index_mm_st.cli``: the same as the ``mmst`` script (tests use it to run the CLI in a subprocess)."""

import sys

from .main import main

sys.exit(main())
