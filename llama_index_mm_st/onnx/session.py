"""An ONNX Runtime session on the CPU, fed from the features our processors produce.

Threads: ONNX Runtime gets as many intra-op threads as torch has (``torch.get_num_threads()``,
which honours ``OMP_NUM_THREADS`` and ``torch.set_num_threads``), so switching backend does not
change how the cores are shared with decoding. Idle threads sleep instead of spinning: on a small
CPU the decoding threads need the cores the model is not using.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .deps import import_onnxruntime

SPIN_WAITING_THREADS = False
"""ONNX Runtime's idle intra-op threads spin by default; here they sleep, so decoding gets the cores."""
_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
           "tensor(bool)": np.bool_, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def runtime_errors() -> tuple[type[BaseException], ...]:
    """What ONNX Runtime raises (its own classes, plain ``Exception`` subclasses)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
             "NotImplemented", "RuntimeException", "EPFail", "NotFound", "ModelLoaded")
    return tuple(getattr(state, name) for name in names if hasattr(state, name))


def default_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


class OnnxGraph:
    """One loaded graph with one output. ``run`` takes a features dict (torch tensors or arrays) and
    returns the output as a float32 array; a feature the graph can't take is a ``ValueError``."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPIN_WAITING_THREADS else "0")
        options.log_severity_level = 4  # fatal only: a refused input is raised as a ValueError carrying the message
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        self._errors = runtime_errors()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {item.name: item for item in self.session.get_inputs()}
        self.output = self.session.get_outputs()[0].name

    def run(self, features: Mapping[str, Any]) -> np.ndarray:
        feed = {}
        for name, declared in self.inputs.items():
            if name not in features:
                raise ValueError(f"the ONNX graph needs the input {name!r}, which the processor did not produce "
                                 f"(it produced {sorted(k for k in features if k != 'modality')})")
            feed[name] = _array(features[name], _DTYPES.get(declared.type))
        try:
            output = self.session.run([self.output], feed)[0]
        except self._errors as exc:  # a shape or type the graph can't take: the caller names the item
            raise ValueError(f"ONNX Runtime refused the input: {str(exc).strip().splitlines()[0]}") from exc
        return np.asarray(output, dtype=np.float32)


def _array(value: Any, dtype: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.ascontiguousarray(value)  # an expanded (stride-0) view must be materialised for the runtime
    return array.astype(dtype, copy=False) if dtype is not None and array.dtype != dtype else array
