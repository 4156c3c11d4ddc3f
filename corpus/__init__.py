"""Corpus: documents, loaders and the parser that splits them into clauses."""

from corpus.loaders import DocumentLoader, LoaderError
from corpus.manifest import SHIPPED_DIR, shipped_documents
from corpus.models import Clause, DocumentMeta, ParsedDocument
from corpus.parsing import MAX_CLAUSE_CHARS, ClauseParser

__all__ = [
    "Clause",
    "DocumentMeta",
    "ParsedDocument",
    "ClauseParser",
    "MAX_CLAUSE_CHARS",
    "DocumentLoader",
    "LoaderError",
    "shipped_documents",
    "SHIPPED_DIR",
]
