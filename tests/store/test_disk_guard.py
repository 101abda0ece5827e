"""A full disk stops an Edge store with one line before the engine writes, never with SIGBUS.

The free-space reading is stubbed at its one boundary (``disk.free_bytes``), as a disk that holds only
this store: its capacity minus what the store's files allocate. One test fills a real tmpfs where the
machine lets it mount one (the issue's SIGBUS came from a 30 MB tmpfs); it is skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.errors import DiskFullError
from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store import payload
from llama_index_mm_st.store.backends import disk
from tests.cli.conftest import run_cli  # noqa: F401 - fixture
from tests.store.conftest import unit

REPO = Path(__file__).resolve().parents[2]
DIM, BATCH, TOTAL = 256, 64, 640
LINE = re.compile(r"the disk holding (.+) has ([\d.]+ [KMG]B) free, about ([\d.]+ [KMG]B) is needed to go on; "
                  r"free space and run the same command again")


def assert_full_disk_line(text: str, index: Path) -> None:
    """The one line for ``full_index``: its path, about 1 MB free (less the lock holder's record, a block
    written when the store is opened, before the guard reads the disk), 64 MB needed."""
    found = LINE.fullmatch(text)
    assert found and found.group(1) == str(index) and found.group(3) == "64.0 MB", text
    number, unit = found.group(2).split()
    free = float(number) * {"KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    assert 0.95e6 <= free <= 1.0e6, text


def nodes(count: int = TOTAL) -> list[TextNode]:
    rng = np.random.default_rng(7)
    return [TextNode(id_=f"n{i:04d}", text=f"note {i} about part {i * 7}", embedding=unit(rng.normal(size=DIM)),
                     metadata={"shelf": i % 9}) for i in range(count)]


class Disk:
    """A disk of ``capacity`` bytes holding only the files under ``root``: free = capacity - allocated."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root, self.capacity = root, capacity
        self.readings = 0

    def free(self, path: Any) -> int:
        self.readings += 1
        return self.capacity - (disk.allocated_bytes(self.root) if self.root.exists() else 0)


@pytest.fixture
def stub_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, int], Disk]:
    def install(root: Path, capacity: int) -> Disk:
        fake = Disk(root, capacity)
        monkeypatch.setattr(disk, "free_bytes", fake.free)
        return fake

    return install


def estimate(store: MultimodalQdrantStore, batch: list[TextNode]) -> int:
    """The guard's own estimate for writing ``batch`` (margin included)."""
    assert store.schema is not None
    points = [payload.node_to_point(n, DIM, store.sparse_query_vector, [], store.schema.dense) for n in batch]
    return disk.batch_bytes(points, store.schema)


def contents(store: MultimodalQdrantStore) -> tuple[dict[str, str], dict[str, tuple[float, ...]]]:
    """Every node's text by id, and every point's stored vector by point id."""
    texts = {n.node_id: n.get_content() for n in store.get_nodes()}
    vectors = {p.id: tuple(np.round(p.dense["text"], 6)) for batch in store.export_points(256) for p in batch}
    return texts, vectors


def test_a_batch_that_would_not_fit_stops_the_add_and_the_rerun_resumes_exactly(tmp_path, stub_disk):
    everything = nodes()
    store = MultimodalQdrantStore(path=str(tmp_path / "idx"), dim=DIM, batch_size=BATCH)
    store.add(everything[:BATCH])
    # Room for the floor and about three more batches, as the guard estimates them.
    stub_disk(tmp_path, disk.allocated_bytes(tmp_path) + disk.FLOOR_BYTES + int(3.5 * estimate(store, everything[:BATCH])))
    with pytest.raises(DiskFullError) as caught:
        store.add(everything)
    found = LINE.fullmatch(str(caught.value))
    assert found and found.group(1) == str(tmp_path / "idx"), str(caught.value)
    assert caught.value.free < caught.value.needed and caught.value.errno == 28
    written = store.count()
    assert BATCH < written < TOTAL and written % BATCH == 0  # whole batches, nothing half-written
    store.close()

    stub_disk(tmp_path, 10**12)  # space freed: the same add again
    with MultimodalQdrantStore(path=str(tmp_path / "idx"), batch_size=BATCH) as resumed:
        assert resumed.count() == written  # what was written is all there, and the store opens
        resumed.add(everything)
        with MultimodalQdrantStore(path=str(tmp_path / "clean"), batch_size=BATCH) as clean:
            clean.add(everything)
            assert resumed.count() == TOTAL
            assert contents(resumed) == contents(clean)
            query = VectorStoreQuery(query_embedding=everything[5].embedding, similarity_top_k=5)
            assert resumed.query(query).ids == clean.query(query).ids


def test_optimize_is_refused_when_the_new_segments_would_not_fit(tmp_path, stub_disk):
    store = MultimodalQdrantStore(path=str(tmp_path / "idx"), dim=DIM)
    store.add(nodes(200))
    segments = disk.allocated_bytes(Path(store.local_path) / "shard" / "segments")
    fake = stub_disk(tmp_path, disk.allocated_bytes(tmp_path) + disk.FLOOR_BYTES + segments)  # under 2x segments
    with pytest.raises(DiskFullError, match="free space and run the same command again"):
        store.optimize()
    assert fake.readings == 1 and store.count() == 200
    stub_disk(tmp_path, 10**12)
    store.optimize()
    assert store.count() == 200
    store.close()


@pytest.fixture
def full_index(tmp_path: Path, stub_disk: Callable[[Path, int], Disk]) -> Iterator[Path]:
    """A store on a disk with 1 MB left."""
    index = tmp_path / "idx"
    with MultimodalQdrantStore(path=str(index), dim=DIM) as store:
        store.add(nodes(10))
    stub_disk(tmp_path, disk.allocated_bytes(tmp_path) + 1_000_000)
    yield index


def test_opening_a_store_on_a_full_disk_fails_with_one_line_and_keeps_nothing_locked(full_index, monkeypatch):
    with pytest.raises(DiskFullError) as caught:
        MultimodalQdrantStore(path=str(full_index))
    assert_full_disk_line(str(caught.value), full_index)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 10**12)
    with MultimodalQdrantStore(path=str(full_index)) as store:  # the failed open let go of the lock
        assert store.count() == 10


def test_closing_on_a_full_disk_leaves_the_flush_to_the_wal_and_lets_go(tmp_path, monkeypatch):
    store = MultimodalQdrantStore(path=str(tmp_path / "idx"), dim=DIM)
    store.add(nodes(50))
    monkeypatch.setattr(disk, "free_bytes", lambda path: 0)
    with pytest.raises(DiskFullError):
        store.flush()  # an explicit checkpoint is refused with the line
    store.close()  # no flush (on a real full disk it fails half-way: the tmpfs test), the lock let go
    monkeypatch.setattr(disk, "free_bytes", lambda path: 10**12)
    with MultimodalQdrantStore(path=str(tmp_path / "idx")) as reopened:
        assert reopened.count() == 50  # every write was in the WAL


@pytest.mark.parametrize("command", [("info",), ("search", "note 3")])
def test_mmst_info_and_search_on_a_full_disk_print_one_line(full_index, run_cli, command):  # noqa: F811
    code, out, err = run_cli(*command, "--store", str(full_index))
    assert (code, out) == (1, "")
    assert err.startswith("mmst: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert_full_disk_line(err[len("mmst: error: "):-1], full_index)


def test_mmst_index_on_a_full_disk_stops_with_one_line_and_the_rerun_finishes(tmp_path, stub_disk, run_cli,  # noqa: F811
                                                                               tiny_clip_dir):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"note{i}.txt").write_text(f"Shelf {i} holds part QX-{i}.\n")
    index = tmp_path / "idx"
    stub_disk(tmp_path / "none", 20_000_000)
    code, out, err = run_cli("index", str(folder), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 1 and err == (f"mmst: error: the disk holding {index} has 20.0 MB free, about 64.0 MB is needed to "
                                 "go on; free space and run the same command again\n")
    stub_disk(tmp_path / "none", 10**12)
    code, out, err = run_cli("index", str(folder), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    code, out, _ = run_cli("info", "--store", str(index))
    assert code == 0 and "points: 3" in out


# ---------------------------------------------------------------- a real full disk (tmpfs)

TMPFS_POINTS, TMPFS_BATCH = 4096, 512


def tmpfs_batch(start: int) -> list[TextNode]:
    """The points the tmpfs test writes, batch by batch: 512-d, so 4096 of them overflow the tmpfs."""
    vectors = np.random.default_rng(start).standard_normal((TMPFS_BATCH, 512)).astype(np.float32)
    return [TextNode(id_=f"{i:08d}-0000-4000-8000-000000000000", text=f"note {i}", embedding=vectors[i - start].tolist())
            for i in range(start, start + TMPFS_BATCH)]


FILLER = textwrap.dedent(
    """
    import sys
    from llama_index_mm_st.errors import DiskFullError
    from llama_index_mm_st.store import MultimodalQdrantStore
    from tests.store.test_disk_guard import TMPFS_BATCH, TMPFS_POINTS, tmpfs_batch
    store = MultimodalQdrantStore(path=sys.argv[1], dim=512, dense_vectors=["text", "image"])
    try:
        for start in range(0, TMPFS_POINTS, TMPFS_BATCH):
            store.add(tmpfs_batch(start))
    except DiskFullError as exc:
        print("refused", store.count(), exc, flush=True)
        with open(sys.argv[2], "wb") as filler:  # now something else fills the disk to the last block
            try:
                while True:
                    filler.write(bytes(1 << 20))
                    filler.flush()
            except OSError:
                pass
    else:
        print("done", store.count(), flush=True)
    store.close()  # on a full disk too: the flush is left to the WAL, never a half-written one
    print("closed", flush=True)
    """
)


def _mount_tmpfs(where: Path, size: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def _child(*argv: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-c", *argv], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)


def test_a_real_full_tmpfs_stops_mmst_with_one_line_and_a_rerun_resumes(tmp_path):
    mount = tmp_path / "tmpfs"
    if not _mount_tmpfs(mount, "96m"):
        pytest.skip("mounting a tmpfs needs root and mount(8) (the stubbed tests above cover the guard)")
    try:
        store = mount / "store"
        first = _child(FILLER, str(store), str(mount / "filler"))
        assert first.returncode == 0, first.stderr  # not -7: SIGBUS
        assert first.stdout.startswith("refused ") and first.stdout.endswith("closed\n"), first.stdout
        written = int(first.stdout.split()[1])
        assert 0 < written < TMPFS_POINTS and written % TMPFS_BATCH == 0
        assert os.statvfs(mount).f_bavail < 256  # the disk is full to (almost) the last block
        info = _child("from llama_index_mm_st.cli import main; raise SystemExit(main(['info', '--store', "
                      f"{str(store)!r}]))")
        assert info.returncode == 1 and info.stdout == "", info.stderr
        assert info.stderr.endswith("free space and run the same command again\n") and info.stderr.count("\n") == 1
        (mount / "filler").unlink()
        assert subprocess.run(["mount", "-o", "remount,size=256m", str(mount)]).returncode == 0  # space freed
        # Space freed: the same writes again, here (the disk has room now, so no signal can come).
        with MultimodalQdrantStore(path=str(store)) as resumed:
            assert resumed.count() == written  # kept through a close on a full disk
            for start in range(0, TMPFS_POINTS, TMPFS_BATCH):
                resumed.add(tmpfs_batch(start))
            assert resumed.count() == TMPFS_POINTS
            assert {n.node_id for n in resumed.get_nodes()} == {n.node_id for start in range(0, TMPFS_POINTS, TMPFS_BATCH)
                                                                 for n in tmpfs_batch(start)}
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
