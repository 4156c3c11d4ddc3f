"""Which documents a question names: a name inside a longer name is not a mention of its own."""

from __future__ import annotations

from corpus.models import DocumentMeta
from corpus.naming import documents_named

DOCS = {
    "law": DocumentMeta(doc_id="law", title="中华人民共和国外商投资法", short_title="外商投资法", kind="law",
                        title_en="Foreign Investment Law"),
    "reg": DocumentMeta(doc_id="reg", title="中华人民共和国外商投资法实施条例", short_title="外商投资法实施条例",
                        kind="law", title_en="Regulation for Implementing the Foreign Investment Law"),
    "dsl": DocumentMeta(doc_id="dsl", title="中华人民共和国数据安全法", short_title="数据安全法", kind="law",
                        aliases=["DSL"]),
}


def test_the_longer_name_claims_its_characters():
    assert documents_named("外商投资法实施条例第二十七条怎么说？", DOCS) == ["reg"]
    assert documents_named("Article 27 of the Regulation for Implementing the Foreign Investment Law", DOCS) == ["reg"]


def test_both_count_when_the_shorter_name_also_stands_alone():
    assert documents_named("外商投资法和外商投资法实施条例有何不同", DOCS) == ["law", "reg"]
    assert documents_named("外商投资法实施条例与外商投资法有何不同", DOCS) == ["reg", "law"]


def test_titles_aliases_and_case():
    assert documents_named("中华人民共和国数据安全法第三十一条", DOCS) == ["dsl"]
    assert documents_named("what does the dsl say", DOCS) == ["dsl"]
    assert documents_named("what does the dsl say", DOCS, min_len=4) == []  # names shorter than min_len do not count
    assert documents_named("公司法怎么规定", DOCS) == []


def _scan(table, text: str, min_len: int = 3, skip_kinds: tuple[str, ...] = ()) -> list[str]:
    """The table's rule over every name, without the candidate lookup (the reference it must agree with)."""
    return table._claim(text.lower(), list(range(len(table.entries))), min_len, skip_kinds)


def test_the_candidate_lookup_finds_what_a_scan_of_every_name_finds() -> None:
    import random

    from corpus.manifest import shipped_documents
    from corpus.naming import NameTable, names_of

    metas = {d.meta.doc_id: d.meta for d in shipped_documents()}
    metas["x"] = DocumentMeta(doc_id="x", title="X", aliases=["法", "Data"])  # one-character names too
    table = NameTable(metas)
    names = sorted({n for m in metas.values() for n in names_of(m)})
    rng = random.Random(5)
    fillers = ["第三条", "和", "怎么规定", " what does ", "与", "？", "实施条例", "中华人民共和国", "DATA law"]
    for _ in range(400):
        text = "".join(rng.choice(names + fillers) for _ in range(rng.randint(1, 5)))
        for min_len in (1, 2, 3):
            assert table.named(text, min_len) == _scan(table, text, min_len), text
        assert table.named(text, 2, ("plan",)) == _scan(table, text, 2, ("plan",)), text
