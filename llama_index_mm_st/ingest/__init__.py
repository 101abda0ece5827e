"""The ingestion job, once: files -> documents -> nodes -> resume decision -> embed -> points -> write.

``Indexer(store, embedding).index(paths)`` runs it in-process (what ``mmst index`` uses); the Ray
runner (``distributed.ray_index``, what ``mmst index --ray`` uses) runs the same per-file and
per-document steps (``read.read_file``, ``nodes.plan_document``) in its tasks and actors, so the two
cannot drift apart. Progress is reported through a ``Progress`` passed in; the summary is an
``IndexSummary`` whose lines (``format_summary``, ``format_problems``) are what the CLI prints.
"""

from .indexer import NODES_PER_WRITE, Indexer, new_index_vectors, prepare_store
from .listing import FileItem, Listing, list_inputs
from .manifest import Manifest, check_model, read_manifest, write_manifest
from .nodes import DocumentWork, IngestPlan, nodes_of, plan_document
from .progress import NoProgress, Progress
from .read import Collected, FileRead, Readers, collect, read_file, readers_for
from .resume import StoredDocuments, resume_action
from .summary import IndexSummary, format_problems, format_summary

__all__ = [
    "Collected",
    "DocumentWork",
    "FileItem",
    "FileRead",
    "IndexSummary",
    "Indexer",
    "IngestPlan",
    "Listing",
    "Manifest",
    "NODES_PER_WRITE",
    "NoProgress",
    "Progress",
    "Readers",
    "StoredDocuments",
    "check_model",
    "collect",
    "format_problems",
    "format_summary",
    "list_inputs",
    "new_index_vectors",
    "nodes_of",
    "plan_document",
    "prepare_store",
    "read_file",
    "read_manifest",
    "readers_for",
    "resume_action",
    "write_manifest",
]
