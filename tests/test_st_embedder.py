"""The sentence-transformers backend loads a user's model from a local folder (built here, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.st

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")


def _tiny_model(folder: Path) -> Path:
    """A 2-layer BERT with a character vocabulary, wrapped as a SentenceTransformer and saved."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted(set("支持境外医疗专业人员短期执业数据跨境流动机制外国医生诊所开设abcdefghijklmnopqrstuvwxyz0123456789"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    raw = folder / "raw"
    raw.mkdir(parents=True)
    (raw / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    word = Transformer(str(raw), max_seq_length=64)
    pooling = Pooling(word.get_embedding_dimension() if hasattr(word, "get_embedding_dimension") else word.get_word_embedding_dimension(), pooling_mode="mean")
    out = folder / "tiny-st"
    st.SentenceTransformer(modules=[word, pooling], device="cpu").save(str(out))
    return out


def test_local_folder_model_embeds_and_indexes(tmp_path: Path):
    from corpus.models import DocumentMeta
    from corpus.parsing import ClauseParser
    from retrieval.embeddings import make_embedder
    from retrieval.retriever import HybridRetriever
    from retrieval.store import ClauseStore, make_client

    path = _tiny_model(tmp_path)
    embedder = make_embedder(f"st:{path}")
    vectors = embedder.embed_documents(["支持境外医疗专业人员短期执业。", "数据跨境流动机制"])
    assert vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_query("境外医疗人员")
    assert query.shape == (32,)

    store = ClauseStore(make_client(tmp_path / "chroma"), embedder)
    assert "tiny-st" in store.collection.name
    parsed = ClauseParser().run(DocumentMeta(doc_id="n", title="通知"),
                                "第一条 支持境外医疗专业人员短期执业。\n第二条 探索数据跨境流动机制。")
    assert store.upsert(parsed)
    hits = HybridRetriever(store).run("境外医疗人员执业", k=2)
    assert hits[0].clause.clause_id == "n/第一条"


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    from retrieval.embeddings import EmbeddingError, make_embedder

    with pytest.raises(EmbeddingError, match="cannot load"):
        make_embedder(f"st:{tmp_path / 'nope'}")
