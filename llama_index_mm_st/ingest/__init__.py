"""The ingestion job, once: files -> documents -> nodes -> resume decision -> embed -> points -> write.

``Indexer(store, embedding).index(paths)`` runs it in-process (what ``mmst index`` uses); the Ray
runner (``distributed.ray_index``, what ``mmst index --ray`` uses) runs the same per-file and
per-document steps (``read.read_file``, ``nodes.plan_document``) in its tasks and actors, so the two
cannot drift apart. Progress is reported through a ``Progress`` passed in; the summary is an
``IndexSummary`` whose lines (``format_summary``, ``format_problems``) are what the CLI prints.
What an index holds, by file, is ``indexed_files``; ``remove_files`` and ``prune`` delete files'
documents whole (``mmst rm``, and ``mmst index`` for files gone from its folders).
"""

from .catalog import INDEXED_AT_KEY, IndexedFile, Removal, gone_files, indexed_files, prune, remove_files
from .indexer import NODES_PER_WRITE, IndexCancelled, Indexer, new_index_vectors, prepare_store
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
    "INDEXED_AT_KEY",
    "IndexCancelled",
    "IndexSummary",
    "IndexedFile",
    "Indexer",
    "IngestPlan",
    "Listing",
    "Manifest",
    "NODES_PER_WRITE",
    "NoProgress",
    "Progress",
    "Readers",
    "Removal",
    "StoredDocuments",
    "check_model",
    "collect",
    "format_problems",
    "format_summary",
    "gone_files",
    "indexed_files",
    "list_inputs",
    "new_index_vectors",
    "nodes_of",
    "plan_document",
    "prepare_store",
    "prune",
    "read_file",
    "read_manifest",
    "readers_for",
    "remove_files",
    "resume_action",
    "write_manifest",
]
