"""Split a document's text into clauses that follow the document's own numbering.

Three layouts are recognised:

* **plan** (``一、`` / ``1、`` level-one headings, ``（一）`` items): every sentence of an
  item under a "重点工作"-style section is its own clause (``fz-plan/三/（一）/3``); the
  item's title sentence is the clause ``fz-plan/三/（一）``; items of other sections
  (实施步骤, 保障措施) are one clause each; paragraphs directly under a level-one heading
  are split into sentences (``fz-plan/二/1``); text before the first heading is the
  preamble (``fz-plan/序言/1``).
* **law** (``第X章`` / ``第X节`` / ``第X条``): one clause per article
  (``data-security-law/第三十一条``). An article longer than :data:`MAX_CLAUSE_CHARS` is
  split at 款/项 boundaries, never mid-sentence, into ``…/第三十一条/1``, ``…/2``; every
  piece keeps the article in its heading path.
* **paragraphs** (anything else): paragraphs, split at sentence ends when too long.

Usage::

    parser = ClauseParser()
    parsed = parser.run(meta, text)
    parsed.clauses[0].clause_id
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from corpus.models import Clause, DocumentMeta, ParsedDocument
from corpus.numbering import cn_to_int, int_to_cn

#: Documented upper bound of a clause's text, in characters.
MAX_CLAUSE_CHARS = 300

_CN_NUM = "零〇一二三四五六七八九十百千两"

# Word-processor debris: [bookmark: _Toc…], [anchor…], {#_Toc…}, zero-width characters.
_DEBRIS = re.compile(
    r"\[(?:bookmark|anchor|_Toc|_Hlk|comment)[^\]]*\]|\{#_?(?:Toc|Hlk)[^}]*\}|[\u200b\u200c\u200d\u2060\ufeff]",
    re.IGNORECASE,
)
_HEADER = re.compile(r"^#\s*标题[:：]")
_LEVEL1 = re.compile(rf"^(?:([{_CN_NUM}]+)、|(\d{{1,2}})[、.．]\s*)\s*(\S.*)$")
_ITEM = re.compile(rf"^[（(]([{_CN_NUM}]+)[）)]\s*(.*)$")
_CHAPTER = re.compile(rf"^#*\s*(第[{_CN_NUM}\d]+章)\s*(.*)$")
_SECTION = re.compile(rf"^#*\s*(第[{_CN_NUM}\d]+节)\s*(.*)$")
_ARTICLE = re.compile(rf"^(第([{_CN_NUM}\d]+)条(?:之[{_CN_NUM}]+)?)[\s\u3000]*(.*)$")
_SENTENCE_END = re.compile(r"(?<=[。！？!?])(?![”’」』）)])")
_SOFT_BREAK = re.compile(r"(?<=[；;])")
_TASK_SECTION = re.compile(r"重点|主要任务|工作任务|任务")


def _squash(text: str) -> str:
    """``总  则`` → ``总则`` (headings are spaced out for typesetting)."""
    return re.sub(r"[\s\u3000]+", "", text)


def clean_text(text: str) -> str:
    """Remove word-processor debris and normalise line ends; punctuation stays as written."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _DEBRIS.sub("", text)
    lines = [line.strip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def parse_header(line: str) -> dict[str, str]:
    """Parse ``# 标题：…｜文号：…｜发布机关：…｜日期：…｜来源：…`` into metadata fields."""
    keys = {"标题": "title", "文号": "wenhao", "发布机关": "issuer", "日期": "date", "来源": "source"}
    out: dict[str, str] = {}
    body = line.lstrip("\ufeff").lstrip("#").strip()
    for part in re.split(r"[｜|]", body):
        if "：" in part or ":" in part:
            key, _, value = re.split(r"([：:])", part, maxsplit=1)
            name = keys.get(key.strip())
            if name:
                out[name] = value.strip()
    return out


def split_sentences(text: str) -> list[str]:
    """Split at 。！？ (keeping closing quotes with their sentence)."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _pack(pieces: list[str], limit: int, joiner: str = "") -> list[str]:
    """Greedily pack consecutive pieces into chunks of at most ``limit`` chars."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if current and len(candidate) > limit:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def bound_sentence(sentence: str, limit: int = MAX_CLAUSE_CHARS) -> list[str]:
    """A sentence longer than ``limit`` is split at ；, then at ，, as a last resort."""
    if len(sentence) <= limit:
        return [sentence]
    pieces = [p for p in _SOFT_BREAK.split(sentence) if p]
    if max(len(p) for p in pieces) > limit:
        pieces = [p for p in re.split(r"(?<=[，,])", sentence) if p]
    out: list[str] = []
    for chunk in _pack(pieces, limit):
        while len(chunk) > limit:  # no punctuation at all: hard cut
            out.append(chunk[:limit])
            chunk = chunk[limit:]
        out.append(chunk)
    return out


@dataclass
class _Builder:
    meta: DocumentMeta
    clauses: list[Clause] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, local_id: str, path: list[str], label: str, text: str, kind: str) -> None:
        text = text.strip()
        if not text:
            return
        clause_id = f"{self.meta.doc_id}/{local_id}"
        base, n = clause_id, 2
        while clause_id in self.seen:  # a document that repeats its own numbering
            clause_id = f"{base}~{n}"
            n += 1
        self.seen.add(clause_id)
        self.clauses.append(
            Clause(
                clause_id=clause_id,
                doc_id=self.meta.doc_id,
                doc_title=self.meta.title,
                path=list(path),
                label=label,
                text=text,
                order=len(self.clauses),
                kind=kind,
            )
        )


class ClauseParser:
    """Turn a document's text into a :class:`ParsedDocument`.

    Args:
        max_clause_chars: upper bound of one clause's text.

    >>> meta = DocumentMeta(doc_id="d", title="示例条例")
    >>> p = ClauseParser().run(meta, "第一条 为了示例，制定本条例。\\n第二条 本条例自公布之日起施行。")
    >>> [c.clause_id for c in p.clauses]
    ['d/第一条', 'd/第二条']
    """

    def __init__(self, max_clause_chars: int = MAX_CLAUSE_CHARS) -> None:
        if max_clause_chars < 50:
            raise ValueError("max_clause_chars must be at least 50")
        self.max_clause_chars = max_clause_chars

    def run(self, meta: DocumentMeta, text: str) -> ParsedDocument:
        if not meta.doc_id or "/" in meta.doc_id:
            raise ValueError(f"invalid doc_id {meta.doc_id!r}: must be non-empty and contain no '/'")
        cleaned = clean_text(text)
        lines = [ln for ln in cleaned.split("\n")]
        if lines and _HEADER.match(lines[0].lstrip("\ufeff")):
            lines = lines[1:]
        layout = self.detect_layout(lines)
        builder = _Builder(meta)
        if layout == "law":
            self._parse_law(lines, builder)
        elif layout == "plan":
            self._parse_plan(lines, builder)
        else:
            self._parse_paragraphs(lines, builder)
        if not builder.clauses:
            raise ValueError(f"document {meta.doc_id!r} has no text to index")
        return ParsedDocument(meta=meta, clauses=builder.clauses,
                              content_hash=ParsedDocument.hash_text(
                                  meta.model_dump_json() + "\n" + unicodedata.normalize("NFC", cleaned)))

    @staticmethod
    def detect_layout(lines: list[str]) -> str:
        articles = sum(1 for ln in lines if _ARTICLE.match(ln))
        level1 = sum(1 for ln in lines if _LEVEL1.match(ln) and len(ln) < 40)
        items = sum(1 for ln in lines if _ITEM.match(ln))
        if articles >= 2:
            return "law"
        if level1 >= 2 or (level1 >= 1 and items >= 2):
            return "plan"
        return "paragraphs"

    # ----------------------------------------------------------------- plan
    def _parse_plan(self, lines: list[str], b: _Builder) -> None:
        section_no = ""  # 三
        section_title = ""  # 三、重点工作
        is_task_section = False
        preamble_done = False
        counters: dict[str, int] = {}

        def next_n(key: str) -> int:
            counters[key] = counters.get(key, 0) + 1
            return counters[key]

        for line in lines:
            if not line or line.startswith("#"):
                continue
            m1 = _LEVEL1.match(line)
            # "0. …" (a numbered step in an uploaded text) is not a section heading: numbering starts at 1.
            if m1 and len(line) < 40 and "。" not in line and not (m1.group(2) and int(m1.group(2)) == 0):
                cn, arabic, title = m1.groups()
                section_no = cn if cn else int_to_cn(int(arabic))
                section_title = f"{section_no}、{title.strip()}"
                is_task_section = bool(_TASK_SECTION.search(title))
                preamble_done = True
                continue
            mi = _ITEM.match(line)
            if mi and section_no:
                item_no = f"（{mi.group(1)}）"
                body = mi.group(2).strip()
                sentences = split_sentences(body)
                title = sentences[0] if sentences else body
                item_path = [section_title, f"{item_no}{title.rstrip('。')}"]
                item_label = f"{section_no}{item_no}"
                if is_task_section:
                    b.add(f"{section_no}/{item_no}", item_path, item_label, f"{item_no}{title}", "item-title")
                    for sentence in sentences[1:]:
                        for piece in bound_sentence(sentence, self.max_clause_chars):
                            n = next_n(f"{section_no}/{item_no}")
                            b.add(f"{section_no}/{item_no}/{n}", item_path, f"{item_label}{n}", piece, "sentence")
                else:
                    chunks = _pack(
                        [p for s in split_sentences(line) for p in bound_sentence(s, self.max_clause_chars)],
                        self.max_clause_chars,
                    )
                    for k, chunk in enumerate(chunks, start=1):
                        suffix = "" if len(chunks) == 1 else f"/{k}"
                        b.add(f"{section_no}/{item_no}{suffix}", item_path,
                              item_label + ("" if len(chunks) == 1 else f"({k})"), chunk, "item")
                continue
            if not preamble_done:
                # Title lines (short, no sentence end) are metadata, not clauses.
                if len(line) < 40 and not re.search(r"[。！？]", line):
                    continue
                for sentence in split_sentences(line):
                    for piece in bound_sentence(sentence, self.max_clause_chars):
                        n = next_n("序言")
                        b.add(f"序言/{n}", ["序言"], f"序言{n}", piece, "preamble")
                continue
            for sentence in split_sentences(line):
                for piece in bound_sentence(sentence, self.max_clause_chars):
                    n = next_n(section_no)
                    b.add(f"{section_no}/{n}", [section_title], f"{section_no}{n}", piece, "sentence")

    # ------------------------------------------------------------------ law
    def _parse_law(self, lines: list[str], b: _Builder) -> None:
        chapter = ""
        section = ""
        short = b.meta.display_title()
        article: str | None = None
        paragraphs: list[str] = []
        preface: list[str] = []

        def flush() -> None:
            nonlocal article, paragraphs
            if article is None:
                return
            path = [p for p in (chapter, section, article) if p]
            self._emit_article(b, article, path, paragraphs, short)
            article, paragraphs = None, []

        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            mc = _CHAPTER.match(line)
            if mc and len(line) < 40:
                flush()
                chapter = f"{mc.group(1)} {_squash(mc.group(2))}".strip()
                section = ""
                continue
            ms = _SECTION.match(line)
            if ms and len(line) < 40:
                flush()
                section = f"{ms.group(1)} {_squash(ms.group(2))}".strip()
                continue
            ma = _ARTICLE.match(line)
            if ma:
                flush()
                article = ma.group(1)
                paragraphs = [line]
                continue
            if line.startswith("#"):
                continue  # the document title repeated as a Markdown heading
            if article is None:
                preface.append(line)
            else:
                paragraphs.append(line)
        flush()
        if preface:
            text = "\n".join(preface)
            for k, chunk in enumerate(_pack(
                    [p for s in split_sentences(text) for p in bound_sentence(s, self.max_clause_chars)],
                    self.max_clause_chars), start=1):
                clause = Clause(clause_id=f"{b.meta.doc_id}/题注" + ("" if k == 1 else f"/{k}"),
                                doc_id=b.meta.doc_id, doc_title=b.meta.title, path=["题注"],
                                label=f"{short} 题注", text=chunk, order=-1, kind="preamble")
                b.clauses.insert(k - 1, clause)
            for i, c in enumerate(b.clauses):
                c.order = i

    def _emit_article(self, b: _Builder, article: str, path: list[str], paragraphs: list[str],
                      short: str) -> None:
        text = "\n".join(paragraphs)
        if len(text) <= self.max_clause_chars:
            b.add(article, path, f"{short} {article}", text, "article")
            return
        # Split at 款 (paragraph) boundaries, then 项 lines; sentences only when one 款 is too long.
        units: list[str] = []
        for para in paragraphs:
            if len(para) <= self.max_clause_chars:
                units.append(para)
            else:
                units.extend(p for s in split_sentences(para) for p in bound_sentence(s, self.max_clause_chars))
        chunks = _pack(units, self.max_clause_chars, joiner="\n")
        for k, chunk in enumerate(chunks, start=1):
            b.add(f"{article}/{k}", path + [f"第{k}部分"], f"{short} {article}({k})", chunk, "article-part")

    # ----------------------------------------------------------- paragraphs
    def _parse_paragraphs(self, lines: list[str], b: _Builder) -> None:
        n = 0
        heading = ""
        for line in lines:
            if not line:
                continue
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
                continue
            n += 1
            units = [p for s in split_sentences(line) for p in bound_sentence(s, self.max_clause_chars)]
            chunks = _pack(units, self.max_clause_chars)
            for k, chunk in enumerate(chunks, start=1):
                suffix = "" if len(chunks) == 1 else f"/{k}"
                label = f"第{n}段" + ("" if len(chunks) == 1 else f"({k})")
                b.add(f"第{n}段{suffix}", [heading] if heading else [], f"{b.meta.display_title()} {label}",
                      chunk, "paragraph")


def article_number(clause_id: str) -> int | None:
    """The article number of a law clause id (``…/第三十一条`` → 31), else None."""
    m = re.search(rf"/第([{_CN_NUM}\d]+)条", clause_id)
    return cn_to_int(m.group(1)) if m else None
