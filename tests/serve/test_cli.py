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
