"""Who holds an embedded store: the refusal names the holder (PID, command line) and what to do, and a
server's record says where to send documents instead. Holders are real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llama_index_mm_st import locks
from llama_index_mm_st.errors import StoreLockedError

ROOT = Path(__file__).resolve().parents[1]
HOLD = textwrap.dedent("""
    import sys
    from llama_index_mm_st import locks
    from llama_index_mm_st.store import MultimodalQdrantStore
    store = MultimodalQdrantStore("mmst", path=sys.argv[1])
    if sys.argv[2] != "-":
        locks.record_serving(store.local_path, sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
    print("closed", flush=True)
""")


def hold(store_dir: Path, serving: str = "-", *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(store_dir), serving, *extra], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def refusal(store_dir: Path) -> StoreLockedError:
    from llama_index_mm_st.store import MultimodalQdrantStore

    with pytest.raises(StoreLockedError) as caught:
        MultimodalQdrantStore("mmst", path=str(store_dir))
    return caught.value


def test_the_refusal_names_the_holding_process_and_how_to_go_on(tmp_path: Path) -> None:
    holder = hold(tmp_path / "store", "-", "--api-key", "sekrit-123", "--token=abc")
    try:
        error = refusal(tmp_path / "store")
    finally:
        holder.communicate("\n", timeout=60)
    message = str(error)
    assert f"process {holder.pid} (" in message and "already open" in message
    assert " -c '...'" in message and str(tmp_path / "store") in message  # its command line
    assert "sekrit-123" not in message and "abc" not in message and "--api-key ***" in message  # never a secret
    assert f"kill {holder.pid}" in message and "--server" not in message  # not a server: stop it or wait
    assert error.holder is not None and error.holder.pid == holder.pid and error.holder.serving is None
    assert not (tmp_path / "store" / "mmst" / locks.HOLDER_FILE).exists()  # the holder took its record with it


def test_a_server_holding_the_store_is_named_with_where_to_send_documents(tmp_path: Path) -> None:
    holder = hold(tmp_path / "store", "http://127.0.0.1:7999")
    try:
        message = str(refusal(tmp_path / "store"))
    finally:
        holder.communicate("\n", timeout=60)
    assert f"process {holder.pid}" in message
    assert "mmst index PATH --server http://127.0.0.1:7999" in message
    assert "POST http://127.0.0.1:7999/v1/documents" in message


def test_a_killed_holder_leaves_a_store_the_next_process_opens(tmp_path: Path) -> None:
    from llama_index_mm_st.store import MultimodalQdrantStore

    holder = hold(tmp_path / "store")
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    assert (tmp_path / "store" / "mmst" / locks.HOLDER_FILE).exists()  # a stale record: never read, replaced
    with MultimodalQdrantStore("mmst", path=str(tmp_path / "store")) as store:
        record = locks.read_holder(store.local_path)  # type: ignore[arg-type]
        assert record is not None and record.pid == os.getpid()
        with pytest.raises(StoreLockedError, match="this process"), locks.reserve(store.local_path):  # type: ignore[arg-type]
            pass


def test_the_command_line_hides_secret_values() -> None:
    shown = locks.command_line(["/usr/bin/python3", "/venv/bin/mmst", "serve", "--api-key", "k1", "--api-key=k2", "--store", "my dir"])
    assert shown == "mmst serve --api-key *** --api-key=*** --store 'my dir'"
