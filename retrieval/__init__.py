"""Retrieval: embeddings, the Chroma clause store, the lexical index and fusion."""
