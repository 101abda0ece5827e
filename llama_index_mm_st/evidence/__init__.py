"""Where a hit matched: regions of images and pages, spans of audio and video, passages of text.

``find_evidence(hits, embedding, EvidenceQuery(read_query(query)))`` computes it for a list of final
results (a node postprocessor does the same: ``EvidenceLocator``); each hit gets a list of
``Region``/``Span``/``Passage``, best first within each kind. ``locate.py`` says which method reads
which kind of hit; each method's module says how, and why that method.
"""

from .kinds import (EVIDENCE_KINDS, Evidence, EvidenceKind, Passage, Region, Span, best_first, clock, describe,
                    evidence_from_dict)
from .locate import (EmbedCall, EvidenceQuery, EvidenceSettings, afind_evidence, arun_steps, embed_rows,
                     evidence_steps, find_evidence, run_steps, StoreLookup)
from .crops import CropSettings
from .passages import PassageSettings
from .spans import WindowSettings
from .nodes import EVIDENCE_KEY, EvidenceLocator, node_evidence, with_evidence

__all__ = [
    "EVIDENCE_KEY", "EVIDENCE_KINDS", "CropSettings", "EmbedCall", "Evidence", "EvidenceKind", "EvidenceLocator",
    "EvidenceQuery", "EvidenceSettings", "Passage", "PassageSettings", "Region", "Span", "WindowSettings",
    "afind_evidence", "arun_steps", "best_first", "clock", "describe", "embed_rows", "evidence_from_dict", "evidence_steps",
    "StoreLookup", "find_evidence", "node_evidence", "run_steps", "with_evidence",
]
