"""The parser follows each document's own numbering and survives the plan's defects."""

from __future__ import annotations

import pytest

from corpus.loaders import DocumentLoader
from corpus.manifest import shipped_documents
from corpus.models import DocumentMeta
from corpus.parsing import MAX_CLAUSE_CHARS, ClauseParser, clean_text, parse_header


def _parsed(doc_id: str):
    shipped = {s.meta.doc_id: s for s in shipped_documents()}[doc_id]
    text, _ = DocumentLoader().run(shipped.path)
    return ClauseParser().run(shipped.meta, text)


@pytest.fixture(scope="module")
def plan():
    return _parsed("fz-plan")


def test_every_shipped_document_parses_into_bounded_nonempty_clauses():
    docs = shipped_documents()
    assert len(docs) == 14
    for shipped in docs:
        text, _ = DocumentLoader().run(shipped.path)
        parsed = ClauseParser().run(shipped.meta, text)
        ids = [c.clause_id for c in parsed.clauses]
        assert len(ids) == len(set(ids)), shipped.meta.doc_id
        for c in parsed.clauses:
            assert c.text.strip(), c.clause_id
            assert len(c.text) <= MAX_CLAUSE_CHARS, c.clause_id
            assert c.clause_id.startswith(shipped.meta.doc_id + "/")


def test_plan_numbering_and_defects(plan):
    by_id = {c.clause_id: c for c in plan.clauses}
    # "1、 总体要求" and "2、 主要目标" are level-one headings like 三、
    assert by_id["fz-plan/一/1"].path == ["一、总体要求"]
    assert by_id["fz-plan/二/2"].text.startswith("服务业增加值达到1.06万亿元")
    # sentence-level tasks inside （一）
    task = by_id["fz-plan/三/（一）/3"]
    assert task.text == "放宽增值电信业务外资准入。"
    assert task.path == ["三、重点工作", "（一）支持电信服务及相关数字产业开放发展"]
    assert task.label == "三（一）3"
    # the bookmark debris before （十二） is gone and the item still parses
    assert "bookmark" not in "".join(c.text for c in plan.clauses)
    assert by_id["fz-plan/三/（十二）"].text == "（十二）推动境内外管理规范相通相容。"
    assert by_id["fz-plan/三/（十二）/1"].text.startswith("探索在汽车、电子、工业消费品")
    # 实施步骤 and 保障措施 items are one clause each; full-width punctuation kept as written
    assert "设在市商务局" in by_id["fz-plan/五/（一）"].text
    assert "（2026年）" in by_id["fz-plan/四/（一）"].text
    assert "“闽江数字贸易走廊”" in by_id["fz-plan/三/（一）/1"].text
    # all 14 items of 三、重点工作
    assert all(f"fz-plan/三/（{n}）" in by_id for n in "一二三四五六七八九十")
    assert "fz-plan/三/（十四）/7" in by_id


def test_reparsing_gives_the_same_ids(plan):
    again = _parsed("fz-plan")
    assert [c.clause_id for c in again.clauses] == [c.clause_id for c in plan.clauses]
    assert again.content_hash == plan.content_hash


def test_law_articles_chapters_and_split_articles():
    law = _parsed("data-security-law")
    by_id = {c.clause_id: c for c in law.clauses}
    art = by_id["data-security-law/第三十一条"]
    assert art.text.startswith("第三十一条")
    assert art.path[0] == "第四章 数据安全保护义务"
    assert art.label == "数据安全法 第三十一条"
    # a long article is split at 款/项 boundaries; every piece keeps the article in its path
    nd = _parsed("network-data-security-regulation")
    parts = [c for c in nd.clauses if c.clause_id.startswith("network-data-security-regulation/第") and
             c.kind == "article-part"]
    assert parts, "some article of this regulation is longer than the limit"
    article = parts[0].clause_id.rsplit("/", 1)[0].split("/")[-1]
    siblings = [p for p in parts if f"/{article}/" in p.clause_id]
    assert len(siblings) >= 2
    assert all(article in p.path for p in siblings)
    assert siblings[0].text.startswith(article)
    assert all(p.text.rstrip().endswith(("。", "；", "：")) for p in siblings)  # never mid-sentence


def test_header_line_metadata():
    header = parse_header("# 标题：中华人民共和国数据安全法｜文号：主席令第八十四号｜发布机关：全国人民代表大会常务委员会｜日期：2021-06-10｜来源：x")
    assert header == {"title": "中华人民共和国数据安全法", "wenhao": "主席令第八十四号",
                      "issuer": "全国人民代表大会常务委员会", "date": "2021-06-10", "source": "x"}


def test_clean_text_removes_debris_keeps_fullwidth():
    assert clean_text("[bookmark: _Toc1]（十二）推动“一单制”。\u200b") == "（十二）推动“一单制”。"


def test_generic_paragraph_document_and_bad_ids():
    meta = DocumentMeta(doc_id="notice", title="通知")
    parsed = ClauseParser().run(meta, "第一段内容。\n\n第二段内容，很长。" + "句子。" * 200)
    assert parsed.clauses[0].clause_id == "notice/第1段"
    assert all(len(c.text) <= MAX_CLAUSE_CHARS for c in parsed.clauses)
    with pytest.raises(ValueError):
        ClauseParser().run(DocumentMeta(doc_id="a/b", title="x"), "text")
    with pytest.raises(ValueError):
        ClauseParser().run(meta, "   \n  ")


def test_a_line_numbered_zero_is_text_not_a_heading() -> None:
    from corpus.models import DocumentMeta
    from corpus.parsing import ClauseParser

    text = "事件接口说明如下。\n0. 用什么区分事件？\n按文件描述符区分。\n"
    parsed = ClauseParser().run(DocumentMeta(doc_id="zero", title="零"), text)  # raised ValueError before
    assert any("用什么区分事件" in c.text for c in parsed.clauses)
