"""``mmst serve`` refuses a bad command line in one line, before it loads a model or opens a port."""

from __future__ import annotations

import pytest

from llama_index_mm_st.cli import main


@pytest.mark.parametrize("argv, words", [
    (["--allow-private-urls"], "--allow-private-urls needs --allow-urls"),
    (["--max-queue", "0"], "--max-queue: "),
    (["--max-queue-wait", "-1"], "--max-queue-wait: "),
    (["--model", "./no/such/model/dir"], "no such model directory"),
    (["--store", "NO_SUCH_INDEX"], "no index at"),
])
def test_bad_command_lines_fail_in_one_line(capsys, tmp_path, monkeypatch, argv: list[str], words: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_help_lists_the_limits(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--max-queue", "--max-batch-tokens", "--max-batch-pixels", "--max-request-items", "--max-body-mb",
                 "--api-key", "--allow-urls", "--drain-seconds", "--store", "--url"):
        assert flag in out


def test_a_port_in_use_is_one_line_and_nothing_claims_startup(capsys, tmp_path, monkeypatch, tiny_clip_dir) -> None:  # type: ignore[no-untyped-def]
    import socket

    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(tiny_clip_dir), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in err and err.count("\n") == 1, err
    assert "startup" not in err.lower()


@pytest.mark.parametrize("damage, reason", [(b"garbage{", "Expecting value"), (b'{"dense": ["text"]}', "KeyError: 'dim'"),
                                           (b"[1, 2]", "a JSON object was expected")])
def test_a_damaged_schema_record_is_named_with_the_way_on(capsys, tmp_path, monkeypatch, tiny_clip_dir,  # type: ignore[no-untyped-def]
                                                          damage: bytes, reason: str) -> None:
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.errors import UnfinishedStoreError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("a red circle")
    assert main(["index", str(tmp_path / "docs"), "--store", "store", "--model", str(tiny_clip_dir)]) == 0
    record = next((tmp_path / "store").rglob("mmst_schema.json"))
    record.write_bytes(damage)
    capsys.readouterr()
    for argv in (["serve", "--store", "store", "--port", "0"], ["search", "red", "--store", "store"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"schema record {record.relative_to(tmp_path)} is damaged ({reason}" in err and "put the file back" in err, err
        assert err.count("\n") == 1
    with pytest.raises(UnfinishedStoreError, match="mmst_schema.json is damaged"):
        MultimodalQdrantStore("mmst", path=str(tmp_path / "store"))
