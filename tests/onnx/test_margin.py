"""``auto``'s margin rule: interleaved rounds, a paired speedup with its noise, torch kept unless another
path wins by more than that noise; and a recorded decision measured again when the machine or the
versions change. The rule is driven by a scripted clock (each path's time per round is written down),
so no test depends on this machine's speed; the end-to-end tests run real tiny models under it."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pytest

from llama_index_mm_st.onnx import choice, selection
from llama_index_mm_st.onnx.measure import MIN_GAIN, REFERENCE, Measurement, measure, pick, time_rounds


class ScriptedClock:
    """A clock that moves only when a wrapped run runs: path ``p``'s n-th timed run (after its warm-up)
    takes ``seconds[p][n]``; the warm-up takes 1 s. Records the order the paths ran in."""

    def __init__(self, seconds: Mapping[str, Sequence[float]]) -> None:
        self.seconds = seconds
        self.now = 0.0
        self.calls: dict[str, int] = {path: 0 for path in seconds}
        self.order: list[str] = []

    def __call__(self) -> float:
        return self.now

    def wrap(self, path: str, run: Callable[[], Any]) -> Callable[[], Any]:
        def timed() -> Any:
            index = self.calls[path]
            self.calls[path] += 1
            self.now += 1.0 if index == 0 else self.seconds[path][index - 1]
            self.order.append(path)
            return run()
        return timed

    def runs(self, outputs: Mapping[str, Any]) -> dict[str, Callable[[], Any]]:
        return {path: self.wrap(path, lambda value=value: value) for path, value in outputs.items()}


SAME = np.eye(3, dtype=np.float32)


def decide(seconds: Mapping[str, Sequence[float]]) -> tuple[Measurement, list[Measurement], str]:
    clock = ScriptedClock(seconds)
    return measure(clock.runs({path: SAME for path in seconds}), 8, "images", "a probe", _cosine,
                   rounds=len(seconds[REFERENCE]), clock=clock)


def _cosine(a: Any, b: Any) -> float:
    from llama_index_mm_st.onnx.measure import min_cosine

    return min_cosine(a, b)


def test_a_steady_win_above_the_floor_takes_the_other_path():
    chosen, measured, reason = decide({"torch fp32": [1.0] * 5, "onnx fp32": [0.8] * 5})
    onnx = next(m for m in measured if m.path == "onnx fp32")
    assert chosen.path == "onnx fp32"
    assert onnx.speedup == pytest.approx(1.25) and onnx.noise == pytest.approx(0.0)
    assert onnx.margin == pytest.approx(0.25 - MIN_GAIN) and onnx.items_per_s == pytest.approx(10.0)
    assert reason.startswith("auto measured onnx fp32 fastest") and "5 interleaved rounds of a probe" in reason


def test_a_gain_below_the_floor_keeps_torch_even_without_noise():
    chosen, measured, reason = decide({"torch fp32": [1.0] * 5, "onnx fp32": [1 / 1.03] * 5})
    assert chosen.path == "torch fp32" and measured[1].speedup == pytest.approx(1.03)
    assert reason.startswith("auto measured torch fp32 fastest within the noise")


def test_a_win_inside_its_own_noise_keeps_torch():
    # ONNX is 1.15x in the median round, but its ratio to torch swings from 0.8x to 1.6x between rounds.
    chosen, measured, _ = decide({"torch fp32": [1.0, 1.0, 1.0, 1.0, 1.0], "onnx fp32": [0.87, 1.25, 0.87, 0.625, 0.87]})
    onnx = measured[1]
    assert onnx.speedup == pytest.approx(1 / 0.87) and onnx.noise == pytest.approx((1.6 - 0.8) / 2)
    assert chosen.path == "torch fp32" and onnx.margin < 0


def test_load_that_slows_a_whole_round_does_not_hide_a_real_win():
    # Another process takes the cores during rounds 2 and 4: both paths slow down there, the ratio does not.
    torch_s = [1.0, 3.0, 1.0, 2.0, 1.0]
    chosen, measured, _ = decide({"torch fp32": torch_s, "onnx fp32": [t / 1.3 for t in torch_s]})
    assert chosen.path == "onnx fp32" and measured[1].speedup == pytest.approx(1.3) and measured[1].noise == pytest.approx(0)


def test_load_that_hits_one_path_once_is_noise_not_a_win():
    # The case: one busy moment during torch's run made ONNX look 15 % faster.
    chosen, measured, _ = decide({"torch fp32": [1.15, 1.0, 1.0, 1.0, 1.0], "onnx fp32": [1.0, 1.0, 1.0, 1.0, 1.0]})
    assert measured[1].speedup == pytest.approx(1.0) and chosen.path == "torch fp32"


def test_the_largest_winning_speedup_is_taken_and_a_lossy_path_must_agree():
    outputs = {"torch fp32": SAME, "onnx fp32": SAME, "torch bf16": SAME * 0.5 + np.roll(SAME, 1, axis=1)}
    clock = ScriptedClock({"torch fp32": [1.0] * 3, "onnx fp32": [0.8] * 3, "torch bf16": [0.25] * 3})
    chosen, measured, _ = measure(clock.runs(outputs), 8, "images", "a probe", _cosine, rounds=3, clock=clock)
    bf16 = next(m for m in measured if m.path == "torch bf16")
    assert bf16.speedup == pytest.approx(4.0) and bf16.agreement < 0.999
    assert chosen.path == "onnx fp32"  # bf16 is 4x but disagrees with fp32: not eligible
    assert pick([*measured[:2], Measurement("torch bf16", 32.0, 0.9999, 4.0, 0.1)]).path == "torch bf16"


def test_rounds_interleave_the_paths_and_rotate_their_order():
    clock = ScriptedClock({"A": [1.0] * 3, "B": [1.0] * 3, "C": [1.0] * 3})
    times, outputs = time_rounds(clock.runs({"A": 1, "B": 2, "C": 3}), rounds=3, clock=clock)
    assert clock.order == ["A", "B", "C",  "A", "B", "C",  "B", "C", "A",  "C", "A", "B"]
    assert outputs == {"A": 1, "B": 2, "C": 3} and all(len(t) == 3 for t in times.values())
    with pytest.raises(ValueError, match="rounds"):
        time_rounds({"A": lambda: 1}, rounds=0)
    with pytest.raises(ValueError, match="reference path"):
        measure({"onnx fp32": lambda: SAME}, 8, "images", "a probe", _cosine)


# ---- end to end: a real tiny cross-encoder and CLIP, timed by the script --------------------------

def scripted(monkeypatch: pytest.MonkeyPatch, seconds: Mapping[str, Sequence[float]]) -> list[ScriptedClock]:
    """Make ``select``'s measurement run the real probe (real outputs, real agreement) on a scripted clock."""
    clocks: list[ScriptedClock] = []

    def measure_scripted(runs, rows, unit, probe, agreement, **_):  # type: ignore[no-untyped-def]
        clock = ScriptedClock({path: seconds.get(path, [1.0] * 5) for path in runs})
        clocks.append(clock)
        return measure({p: clock.wrap(p, run) for p, run in runs.items()}, rows, unit, probe, agreement, clock=clock)

    monkeypatch.setattr(selection, "measure", measure_scripted)
    return clocks


def test_a_reranker_takes_onnx_only_when_it_wins_by_more_than_the_noise(fresh_cache, tiny_bert_cross_encoder_dir,
                                                                        monkeypatch):
    from llama_index_mm_st.rerank import MultimodalReranker

    scripted(monkeypatch, {"torch fp32": [1.0] * 5, "onnx fp32": [1.0, 1.02, 0.98, 1.0, 0.99]})
    kept = MultimodalReranker(str(tiny_bert_cross_encoder_dir)).describe()[0]
    assert (kept["backend"], kept["precision"]) == ("torch", "fp32") and "within the noise" in kept["reason"]
    onnx = next(m for m in kept["measurements"] if m["path"] == "onnx fp32")
    assert onnx["agreement"] > 0.999 and onnx["margin"] == pytest.approx(onnx["speedup"] - 1 - max(onnx["noise"], MIN_GAIN))
    assert onnx["margin"] < 0

    import shutil

    shutil.rmtree(fresh_cache / "decisions")  # measure again, now with a steady 1.4x
    scripted(monkeypatch, {"torch fp32": [1.0] * 5, "onnx fp32": [1 / 1.4] * 5})
    reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir))
    taken = reranker.describe()[0]
    assert (taken["backend"], taken["precision"]) == ("onnx", "fp32"), taken
    assert "a margin of 0.35" in taken["reason"]
    from llama_index_mm_st.rerank.scorers.forward import OnnxScores

    assert isinstance(reranker.scorers[0].forward_pass, OnnxScores)  # the forward object select() built is the one used


def test_a_recorded_decision_is_reused_and_measured_again_on_a_new_machine_or_new_versions(
        fresh_cache, tiny_clip_dir, monkeypatch):
    from llama_index_mm_st.embedding import MultimodalEmbedding

    clocks = scripted(monkeypatch, {"torch fp32": [1.0] * 5, "onnx fp32": [0.5] * 5})
    first = MultimodalEmbedding(str(tiny_clip_dir)).describe()
    assert first["backend"] == "onnx" and len(clocks) == 1
    assert MultimodalEmbedding(str(tiny_clip_dir)).describe() == first and len(clocks) == 1  # recalled

    records = [json.loads(p.read_text()) for p in (fresh_cache / "decisions").rglob("*.json")]
    assert len(records) == 1 and records[0]["versions"]["onnxruntime"] and "load_average" in records[0]

    monkeypatch.setattr(choice, "cpu_signature", lambda: "another CPU")
    MultimodalEmbedding(str(tiny_clip_dir))
    assert len(clocks) == 2  # a new machine measures again
    versions = choice.decision_versions()
    monkeypatch.setattr(choice, "decision_versions", lambda: {**versions, "onnxruntime": "99.0"})
    MultimodalEmbedding(str(tiny_clip_dir))
    assert len(clocks) == 3  # so does an upgraded runtime
    monkeypatch.setattr(choice, "DECISION_RULE", choice.DECISION_RULE + 1)
    MultimodalEmbedding(str(tiny_clip_dir))
    assert len(clocks) == 4  # and a new decision rule
    MultimodalEmbedding(str(tiny_clip_dir))
    assert len(clocks) == 4


def test_blip_towers_go_through_the_same_selection(fresh_cache, tiny_blip_itm_dir, monkeypatch):
    from llama_index_mm_st.rerank import MultimodalReranker
    from llama_index_mm_st.rerank.scorers.forward import OnnxTowers

    clocks = scripted(monkeypatch, {"torch fp32": [1.0] * 5, "onnx fp32": [0.6] * 5})
    reranker = MultimodalReranker(str(tiny_blip_itm_dir))
    report = reranker.describe()[0]
    assert (report["backend"], report["precision"]) == ("onnx", "fp32") and len(clocks) == 1
    assert set(report["parts"]) == {"vision", "text"} and "a text against a probe of 8 images" in report["reason"]
    onnx = next(m for m in report["measurements"] if m["path"] == "onnx fp32")
    assert onnx["agreement"] > 0.9999  # the real probe ran both towers on both paths
    assert isinstance(reranker.scorers[0].towers, OnnxTowers)
