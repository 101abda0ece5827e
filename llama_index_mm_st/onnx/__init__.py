"""The ONNX Runtime backend of the forward pass (extra ``[onnx]``), shared by the embedding and the rerankers.

- ``export.py``: ``torch.onnx.export`` of one part of a model, verified against torch on varied
  batches (a trace that baked in a shape or a branch is refused), and int8 dynamic quantization.
- ``cache.py``: graphs on disk, keyed by the checkpoint's files and the versions of everything that
  shaped them; locked per key so concurrent processes build once; corrupt entries rebuilt.
- ``graphs.py``: a part's cached graph (fp32, or int8 on request) from a checkpoint.
- ``session.py``: an ONNX Runtime CPU session with torch's thread count, fed from processor features.
- ``choice.py``: the (backend, precision) rules, the report of the path taken, ``"auto"``'s recorded decisions.
- ``measure.py``: ``"auto"``'s measurement: interleaved rounds, a paired speedup and its noise, the margin rule.
- ``selection.py``: the one ``select()`` every model kind goes through, fed by its ``ModelKind``.
- ``deps.py``, ``fingerprint.py``: is onnxruntime installed; content hashes remembered by stat.

This is base layer: it knows torch modules and features, not embeddings or scorers; those describe
themselves as a ``ModelKind`` (their parts, forward objects and probe) in ``embedding/forward.py``
and ``rerank/scorers/forward.py``.
Importing this package loads neither torch nor onnxruntime (``mmst info`` reads decisions through it).
"""

from .choice import BACKENDS, BackendReport, Measurement, recorded_choices

__all__ = ["BACKENDS", "BackendReport", "Measurement", "recorded_choices"]
