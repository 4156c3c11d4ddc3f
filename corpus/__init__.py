"""Corpus: documents, loaders and the parser that splits them into clauses."""

from corpus.models import Clause, DocumentMeta, ParsedDocument
from corpus.parsing import ClauseParser, MAX_CLAUSE_CHARS
from corpus.loaders import DocumentLoader, LoaderError
from corpus.manifest import shipped_documents, SHIPPED_DIR

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
