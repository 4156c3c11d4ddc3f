"""Verify a generated answer's citations against the clauses that were in its prompt.

The model cites clause ids in square brackets (``…诊所[fz-plan/三/（二）/3]。``). For each sentence:

1. citations to ids that were not in the prompt are dropped (``dropped_ids``); a citation by a
   prompt clause's label is accepted too; ``【…】`` brackets count like ``[…]``;
2. the sentence is judged against its cited clauses with the support judge the eval suite uses;
   cited clauses that do not support it on their own are removed when another cited one does;
3. a sentence without a supporting citation gets the best prompt clause that supports it
   (``inserted``: it had no citation; ``corrected``: its citations did not support it);
4. a sentence that no prompt clause supports loses its citations, is marked in the text and is
   listed in ``unsupported``.

Short lead-ins ending in a colon ("相关条款如下：") need no citation. The verified text cites by
clause *label* (``[三（二）3]``), placed before the sentence's final punctuation so that a
sentence splitter keeps each marker with its sentence.

Usage::

    verifier = CitationVerifier(judge)
    v = verifier.run("外籍医生可在榕设立诊所[fz-plan/三/（二）/3]。", prompt_clauses, lang="zh")
    v.text, v.citations, v.unsupported
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.citations import MARKER, TRAILING_MARKERS
from assistant.support import SupportJudge
from corpus.models import Clause

__all__ = ["CitationVerifier", "Verification", "VerifiedSentence", "MARKER", "unsupported_mark"]


_SPLIT_IDS = re.compile(r"\s*[,，;；、|]\s*|\s+(?=\S+/)")
_END = re.compile(r"[。！？!?]|\.(?=\s|$)")
_LIST_PREFIX = re.compile(r"^\s*(?:\d{1,2}[.、)）]|[（(]\d{1,2}[)）]|[-*•·])\s*")
_TRAIL_PUNCT = re.compile(r"[。！？!?.；;，,：:\s]+$")
_WORD = re.compile(r"[\w\u3400-\u9fff]")

_MARK = {"zh": "（⚠ 未找到支持这句话的条款）", "en": " (⚠ no clause supports this sentence)"}


def _loose(key: str) -> str:
    """An id or label compared loosely: NFKC (half-width brackets), no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", key))


def unsupported_mark(lang: str) -> str:
    return _MARK.get(lang, _MARK["zh"])


@dataclass
class VerifiedSentence:
    text: str                 # the sentence without citation markers (trailing punctuation kept)
    cited: list[str]          # clause ids it cites after verification
    status: str               # supported | inserted | corrected | unsupported | lead-in
    dropped: list[str] = field(default_factory=list)
    score: float = 0.0


@dataclass
class Verification:
    text: str
    sentences: list[VerifiedSentence]
    citations: list[Clause]
    unsupported: list[str]
    dropped_ids: list[str]

    @property
    def supported_count(self) -> int:
        return sum(s.status in ("supported", "inserted", "corrected") for s in self.sentences)

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.sentences)


@dataclass
class _Piece:
    prefix: str          # list numbering kept in front of the sentence
    body: str            # text with markers removed
    refs: list[str]      # raw marker contents, in order
    end: str             # final punctuation
    newline: str         # what follows the sentence ("" / "\n")


class CitationVerifier:
    """Check, repair and mark the citations of a generated answer.

    Args:
        judge: the support judge (the same one the eval suite uses).
    """

    def __init__(self, judge: SupportJudge) -> None:
        self.judge = judge

    # ----------------------------------------------------------------- parse
    @staticmethod
    def _resolve(ref: str, by_id: dict[str, Clause], by_label: dict[str, Clause]) -> list[tuple[str, str | None]]:
        """``(part, clause id or None)`` for each part of one marker's content."""
        def find(key: str) -> Clause | None:
            return by_id.get(key) or by_label.get(key) or by_id.get(_loose(key)) or by_label.get(_loose(key))

        ref = ref.strip()
        whole = find(ref)
        if whole is not None:
            return [(ref, whole.clause_id)]
        out: list[tuple[str, str | None]] = []
        for part in (p.strip() for p in _SPLIT_IDS.split(ref)):
            if part:
                found = find(part)
                out.append((part, found.clause_id if found else None))
        return out

    @staticmethod
    def _pieces(raw: str) -> list[_Piece]:
        pieces: list[_Piece] = []
        lines = raw.strip().split("\n")
        for li, line in enumerate(lines):
            newline = "\n" if li < len(lines) - 1 else ""
            m = _LIST_PREFIX.match(line)
            prefix = m.group(0) if m and line[m.end():].strip() else ""
            rest = line[len(prefix):]
            # cut into sentences; markers right after the end punctuation belong to the sentence
            spans: list[str] = []
            pos = 0
            for stop_m in _END.finditer(rest):
                stop = stop_m.end()
                tail = TRAILING_MARKERS.match(rest[stop:])
                if tail:
                    stop += tail.end()
                if stop > pos:
                    spans.append(rest[pos:stop])
                    pos = stop
            if pos < len(rest):
                spans.append(rest[pos:])
            if not spans:
                pieces.append(_Piece(prefix, "", [], "", newline))
                continue
            for si, span in enumerate(spans):
                refs = [a or b for a, b in MARKER.findall(span)]
                body = MARKER.sub("", span).rstrip()
                trail = _TRAIL_PUNCT.search(body)
                end = trail.group(0).strip() if trail else ""
                body = body[: trail.start()] if trail else body
                pieces.append(_Piece(prefix if si == 0 else "", body.strip() if si == 0 else body.rstrip(), refs,
                                     end, newline if si == len(spans) - 1 else ""))
        # a piece without words (only markers or punctuation) hands its markers to the previous one
        merged: list[_Piece] = []
        for p in pieces:
            if merged and not _WORD.search(p.body) and not p.prefix and merged[-1].newline == "":
                merged[-1].refs.extend(p.refs)
                merged[-1].newline = p.newline
                if p.end and not merged[-1].end:
                    merged[-1].end = p.end
                continue
            merged.append(p)
        return merged

    # ---------------------------------------------------------------- verify
    def run(self, raw: str, clauses: Sequence[Clause], texts: dict[str, str] | None = None,
            lang: str = "zh") -> Verification:
        """Verify ``raw`` (the model's text) against the prompt ``clauses``.

        Args:
            raw: the model output with ``[clause id]`` markers.
            clauses: the clauses that were in the prompt.
            texts: the text each clause had in the prompt (e.g. neutralized), by clause id;
                defaults to the clause text.
            lang: the answer language (for the unsupported mark).
        """
        by_id = {c.clause_id: c for c in clauses}
        labels: dict[str, list[Clause]] = {}
        for c in clauses:
            labels.setdefault(c.label, []).append(c)
        by_label = {lab: cs[0] for lab, cs in labels.items() if len(cs) == 1}
        # the same ids and labels with half-width brackets and no spaces ("fz-plan/三/(二)/3")
        for c in clauses:
            by_id.setdefault(_loose(c.clause_id), c)
        for lab, c in list(by_label.items()):
            by_label.setdefault(_loose(lab), c)
        ids = [c.clause_id for c in clauses]
        clause_texts = [(texts or {}).get(c.clause_id, c.text) for c in clauses]
        threshold = self.judge.threshold

        sentences: list[VerifiedSentence] = []
        rendered: list[str] = []
        dropped_all: list[str] = []
        used: list[str] = []
        for p in self._pieces(raw):
            cited: list[str] = []
            dropped: list[str] = []
            for ref in p.refs:
                for part, cid in self._resolve(ref, by_id, by_label):
                    if cid is None:
                        dropped.append(part)
                    elif cid not in cited:
                        cited.append(cid)
            dropped_all.extend(dropped)
            if not _WORD.search(p.body):
                rendered.append(p.prefix + p.body + p.end + p.newline)
                continue
            if not cited and p.end in (":", "：") and len(p.body) <= 40:
                sentences.append(VerifiedSentence(p.body + p.end, [], "lead-in", dropped))
                rendered.append(p.prefix + p.body + p.end + p.newline)
                continue
            scores = self.judge.scores(p.body, clause_texts) if clause_texts else []
            supporting = [cid for cid in cited if scores[ids.index(cid)] >= threshold]
            if supporting:
                status, final = "supported", supporting
                score = max(scores[ids.index(cid)] for cid in supporting)
            else:
                best = max(range(len(scores)), key=lambda i: scores[i]) if scores else -1
                if best >= 0 and scores[best] >= threshold:
                    status, final, score = ("corrected" if cited else "inserted"), [ids[best]], scores[best]
                else:
                    status, final = "unsupported", []
                    score = scores[best] if best >= 0 else 0.0
            sentence_text = p.body + p.end
            sentences.append(VerifiedSentence(sentence_text, final, status, dropped, round(float(score), 4)))
            for cid in final:
                if cid not in used:
                    used.append(cid)
            if status == "unsupported":
                body = p.body + unsupported_mark(lang)
            else:
                body = p.body + "".join(f"[{by_id[cid].label}]" for cid in final)
            rendered.append(p.prefix + body + p.end + p.newline)

        text = "".join(rendered).strip()
        return Verification(text=text, sentences=sentences, citations=[by_id[cid] for cid in used],
                            unsupported=[s.text for s in sentences if s.status == "unsupported"],
                            dropped_ids=dropped_all)
