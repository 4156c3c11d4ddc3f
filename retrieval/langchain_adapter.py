"""A LangChain ``BaseRetriever`` over the hybrid retriever; documents carry the clause metadata.

Usage::

    lc = ClauseRetriever(retriever=hybrid, k=5)
    docs = lc.invoke("数据出境安全评估")
    docs[0].metadata["clause_id"]
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from retrieval.retriever import Hit, HybridRetriever


def hit_to_document(hit: Hit) -> Document:
    c = hit.clause
    return Document(
        page_content=c.text,
        id=c.clause_id,
        metadata={"clause_id": c.clause_id, "doc_id": c.doc_id, "doc_title": c.doc_title, "path": c.path_text,
                  "label": c.label, "kind": c.kind, "score": hit.score, "dense": hit.dense, "lexical": hit.lexical,
                  "rank": hit.rank},
    )


class ClauseRetriever(BaseRetriever):
    """LangChain retriever returning clause ``Document`` objects."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    k: int = 5
    doc_id: str | None = None
    section: str | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        hits = self.retriever.run(query, k=self.k, doc_id=self.doc_id, section=self.section)
        return [hit_to_document(h) for h in hits]
