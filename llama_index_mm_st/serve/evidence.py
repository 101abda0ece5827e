"""A search's evidence calls (crops, windows, sentences: ``evidence.EmbedCall``) in the embedding lane.

Each input becomes a lane ``Job`` with its share of a batch, by the same budgets as ``/v1/embeddings``
items: an image its pixels over ``max_batch_pixels``, audio and video their seconds over
``max_batch_media_seconds``, a text its token bound over ``max_batch_tokens``. An input the model
refuses comes back as a NaN row (that crop or window is skipped), not as a failed request.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from ..evidence.locate import EmbedCall, rows_of
from .items import MediaRules, text_cost
from .lanes import Job


def item_cost(item: Any, modality: str, rules: MediaRules) -> float:
    """One evidence input's share of a batch."""
    limits = rules.limits
    if modality == "text":
        return text_cost(str(item), rules)
    if modality == "image":
        width, height = item.size
        return width * height / limits.max_batch_pixels
    if modality == "audio":
        return len(item["array"]) / item["sampling_rate"] / limits.max_batch_media_seconds
    return len(item["array"]) / item["fps"] / limits.max_batch_media_seconds


def evidence_jobs(call: EmbedCall, rules: MediaRules) -> List[Job]:
    return [Job((call.modality, call.role), item, item_cost(item, call.modality, rules)) for item in call.inputs]


def evidence_rows(outcomes: List[Any]) -> np.ndarray:
    """The lane's outcomes ((vector, tokens) or an exception) as the rows the localisers are sent."""
    return rows_of([None if isinstance(outcome, BaseException) else outcome[0] for outcome in outcomes])
