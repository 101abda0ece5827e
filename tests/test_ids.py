"""One id scheme: stable UUID5s from parts, and node ids mapped to Qdrant point ids."""

from __future__ import annotations

import uuid

from llama_index_mm_st.ids import point_id, stable_id


def test_stable_id_is_a_uuid_and_depends_on_every_part():
    first = stable_id("/data/a.pdf", 3)
    assert str(uuid.UUID(first)) == first
    assert stable_id("/data/a.pdf", 3) == first
    assert stable_id("/data/a.pdf", 4) != first
    assert stable_id("/data/a.pdf3") != first  # parts never run together
    assert first == str(uuid.uuid5(uuid.UUID("6a1d1f0e-58f5-4d0a-9d8e-3f1f7f0b8e21"), "/data/a.pdf\x1f3"))


def test_stable_id_accepts_any_file_name():
    odd = "/data/caf\udce9.jpg"  # a non-UTF-8 byte, as os.fsdecode gives it
    assert stable_id(odd) == stable_id(odd) != stable_id("/data/café.jpg")


def test_point_id_keeps_uuids_and_maps_other_ids():
    u = str(uuid.uuid4())
    assert point_id(u) == u
    assert point_id(u.upper()) == u
    assert point_id("doc-1#0") == stable_id("doc-1#0") != point_id("doc-1#1")
