"""The generative answerer: a chat model writes the answer; every sentence's citations are verified.

The chain, step by step (each model call is a LangChain runnable from :mod:`assistant.llm`):

1. **Condense** – with history, the model rewrites the follow-up as a standalone question (on a
   model error the rule-based :class:`~assistant.conversation.Condenser` is used instead).
2. **Retrieve** – the extractive answerer's retrieval and evidence gate: a question the corpus
   does not cover is refused without asking the model. Clauses named in the question come first,
   then (for "which/哪些" questions) the clauses the set matcher finds, then the hits by rank.
3. **Pack** – clauses go into the prompt, labelled by clause id, until the token budget
   (``LLM_MAX_CONTEXT_TOKENS`` minus the fixed prompt minus room for the answer, counted with
   tiktoken offline, :mod:`assistant.tokens`) is full; the lowest-ranked are dropped first.
4. **Stream and verify** – the reply streams sentence by sentence: each sentence is verified
   (:class:`~assistant.verify.CitationVerifier`) as soon as it is complete, so what streams is
   what the final answer says (clause ids shown as labels, made-up ids gone, citations inserted,
   unsupported sentences marked). Nothing streams until a sentence is supported. A reply
   ``NO_ANSWER`` is a refusal.
5. **Report** – sentences no clause supports are listed in ``unsupported_sentences``.
6. **Fall back** – on a model error, a timeout, an empty reply or a reply in which no sentence is
   supported by a clause, the answer is the extractive one, with ``notice`` saying why.

Usage::

    answerer = GenerativeAnswerer(extractive, judge, model_factory=lambda: make_chat_model(settings))
    for event in answerer.stream("外国医生能开诊所吗？"):
        ...   # {"type": "token", "text": …}…, then {"type": "answer", "answer": Answer}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel

from assistant.citations import TRAILING_MARKERS
from assistant.conversation import History
from assistant.extractive import _SET_QUESTION, ExtractiveAnswerer, Retrieved
from assistant.llm import (
    NO_ANSWER,
    PromptClause,
    answer_chain,
    answer_inputs,
    answer_prompt,
    answer_tokens,
    condense_chain,
    condense_inputs,
    neutralize,
    render_clause,
)
from assistant.models import Answer, Citation
from assistant.support import SupportJudge
from assistant.tokens import TokenCounter
from assistant.verify import CitationVerifier, VerifiedSentence
from corpus.models import Clause

log = logging.getLogger(__name__)

__all__ = ["GenerativeAnswerer"]

Event = dict[str, Any]
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_BOUNDARY = re.compile(r"[。！？!?]|\.(?=\s)|\n")
_TAIL = TRAILING_MARKERS
_LIST_PREFIX = re.compile(r"^[ \t]*(?:\d{1,2}[.、)）]|[（(]\d{1,2}[)）]|[-*•·])[ \t]+")
_GROUNDED = ("supported", "inserted", "corrected")

_NOTICE = {
    "zh": "生成模型{why}，以下为抽取式回答（直接引用条款原文）。",
    "en": "The language model {why}; this is the extractive answer (quoting the clauses).",
}
_WHY = {
    "timeout": ("未在限定时间内响应", "timed out"),
    "error": ("调用失败（{detail}）", "failed ({detail})"),
    "empty": ("返回了空回答", "returned an empty answer"),
    "ungrounded": ("的回答无法被条款证实", "gave an answer that no clause supports"),
    "config": ("未正确配置（{detail}）", "is not configured correctly ({detail})"),
    "budget": ("的上下文窗口放不下任何条款", "context window cannot hold a single clause"),
}
_UNSUPPORTED_NOTICE = {
    "zh": "有{n}句话在条款中找不到依据，已在文中标注。",
    "en": "{n} sentence(s) are not supported by any clause and are marked in the text.",
}


def _notice(lang: str, why: str, detail: str = "") -> str:
    zh, en = _WHY[why]
    reason = (en if lang == "en" else zh).format(detail=detail[:120])
    return _NOTICE["en" if lang == "en" else "zh"].format(why=reason)


class _Segmenter:
    """Cut streamed text into complete sentences, each with the citation markers that follow it.

    A sentence is complete at 。！？!? (or ". ") once the next non-marker character has arrived, or
    at a line break; list numbering at a line start ("1. ") is not a sentence end.
    """

    def __init__(self) -> None:
        self.buf = ""
        self.line_start = True

    def feed(self, text: str) -> list[str]:
        self.buf += text
        return self._cut(final=False)

    def flush(self) -> list[str]:
        return self._cut(final=True)

    def _cut(self, final: bool) -> list[str]:
        out = []
        while (seg := self._next(final)) is not None:
            out.append(seg)
        return out

    def _take(self, k: int) -> str:
        seg, self.buf = self.buf[:k], self.buf[k:]
        self.line_start = seg.endswith("\n")
        return seg

    def _next(self, final: bool) -> str | None:
        buf = self.buf
        if not buf:
            return None
        start = 0
        if self.line_start and (m := _LIST_PREFIX.match(buf)):
            start = m.end()
        for m in _BOUNDARY.finditer(buf, start):
            if m.group() == "\n":
                return self._take(m.end())
            k = (t.end() if (t := _TAIL.match(buf, m.end())) else m.end())
            rest = buf[k:].lstrip(" \t")
            if not rest or rest[0] in "[【":
                if final:
                    continue
                return None  # more citation markers may follow
            if rest[0] == "\n":
                k = buf.index("\n", k) + 1
            return self._take(k)
        return self._take(len(buf)) if final else None


class GenerativeAnswerer:
    """Answer with a chat model, then verify every sentence's citations.

    Args:
        extractive: gives retrieval, the evidence gate and the fallback answers.
        judge: the support judge (the eval suite's).
        model_factory: builds the chat model (called once, lazily; an exception means fallback).
        counter: counts prompt tokens (default: cl100k_base, offline, cache in a temp folder).
        max_context_tokens: the model's context window.
        max_clauses: at most this many clauses in a prompt (set questions: ``max_set_clauses``).
        condense_with_model: let the model condense follow-ups (else the rule-based condenser).
    """

    def __init__(self, extractive: ExtractiveAnswerer, judge: SupportJudge,
                 model_factory: Callable[[], BaseChatModel | None], counter: TokenCounter | None = None,
                 max_context_tokens: int = 4096, max_clauses: int = 8, max_set_clauses: int = 15,
                 condense_with_model: bool = True) -> None:
        self.extractive = extractive
        self.judge = judge
        self.verifier = CitationVerifier(judge)
        self._factory = model_factory
        self._model: BaseChatModel | None = None
        self.counter = counter or TokenCounter()
        self.max_context_tokens = max_context_tokens
        self.max_clauses = max_clauses
        self.max_set_clauses = max_set_clauses
        self.condense_with_model = condense_with_model

    @property
    def model(self) -> BaseChatModel:
        if self._model is None:
            model = self._factory()
            if model is None:
                raise ValueError("no chat model configured")
            self._model = model
        return self._model

    # ------------------------------------------------------------ public API
    def run(self, question: str, history: History | None = None) -> Answer:
        """Answer ``question``; the same events as :meth:`stream`, only the final answer returned."""
        answer: Answer | None = None
        for event in self.stream(question, history):
            if event["type"] == "answer":
                answer = event["answer"]
        assert answer is not None
        return answer

    def stream(self, question: str, history: History | None = None) -> Iterator[Event]:
        """``{"type": "token", "text"}`` events (verified sentences), then ``{"type": "answer", "answer"}``.

        The tokens add up to the final answer's text. One exception: when the model fails after some
        sentences have streamed, a notice and the extractive answer follow them, and the final
        answer is the extractive one.
        """
        question = (question or "").strip()
        if not question:
            raise ValueError("question is empty")
        history = list(history or [])
        r = self._retrieve(question, history)
        if r.refused or not r.hits:
            yield from self._emit(self._extractive(r, question, mode="generative"))
            return
        clauses = self._pack(r, r.condensed.standalone or question)
        if not clauses:
            yield from self._emit(self._fallback(r, question, "budget"))
            return
        shown = {c.clause_id: neutralize(c.text) for c in clauses}
        prompt_clauses = [PromptClause(c.clause_id, f"《{c.doc_title}》{c.path_text}", shown[c.clause_id])
                          for c in clauses]
        try:
            model = self.model
        except Exception as exc:  # noqa: BLE001 - misconfiguration: answer anyway, say why
            log.warning("chat model unavailable: %s", exc)
            yield from self._emit(self._fallback(r, question, "config", str(exc)))
            return

        segmenter = _Segmenter()
        raw = ""
        started = False  # the reply is known not to be NO_ANSWER (nor an open <think> block)
        refused = False
        grounded = False  # a supported sentence has been verified: from then on sentences stream
        held: list[str] = []  # verified text waiting for the first supported sentence
        emitted = False
        parts: list[str] = []
        sentences: list[VerifiedSentence] = []
        dropped: list[str] = []
        cited: dict[str, Clause] = {}

        def verify(segments: list[str]) -> Iterator[Event]:
            nonlocal grounded, emitted
            for seg in segments:
                core = seg.strip()
                if not core:
                    text = seg
                else:
                    v = self.verifier.run(core, clauses, texts=shown, lang=r.lang)
                    sentences.extend(v.sentences)
                    dropped.extend(v.dropped_ids)
                    for c in v.citations:
                        cited.setdefault(c.clause_id, c)
                    grounded = grounded or any(x.status in _GROUNDED for x in v.sentences)
                    text = seg[: len(seg) - len(seg.lstrip())] + v.text + seg[len(seg.rstrip()):]
                parts.append(text)
                held.append(text)
                if grounded:
                    out = "".join(held).lstrip() if not emitted else "".join(held)
                    held.clear()
                    if out:
                        emitted = True
                        yield {"type": "token", "text": out}

        try:
            asked = r.condensed.standalone or question  # the answer prompt has no history: the standalone form
            for chunk in answer_chain(model).stream(answer_inputs(asked, prompt_clauses, r.lang)):
                raw += chunk
                if started:
                    yield from verify(segmenter.feed(chunk))
                    continue
                visible = self._visible(raw)
                if visible is None:
                    continue
                head = visible.lstrip()
                if head.startswith(NO_ANSWER):
                    refused = True
                    break
                if NO_ANSWER.startswith(head):
                    continue  # could still become NO_ANSWER
                started = True
                yield from verify(segmenter.feed(head))
            if started:
                yield from verify(segmenter.flush())
        except Exception as exc:  # noqa: BLE001 - any model failure falls back
            log.warning("chat model failed (%s: %s); extractive fallback", type(exc).__name__, exc)
            if "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError):
                why = "timeout"
            elif "no generation chunks" in str(exc).lower():  # LangChain's word for an empty stream
                why = "empty"
            else:
                why = "error"
            yield from self._emit(self._fallback(r, question, why, type(exc).__name__), after_partial=emitted)
            return

        if refused or (not started and (self._visible(raw) or "").strip().startswith(NO_ANSWER)):
            yield from self._emit(self._model_refusal(r, question))
            return
        if not started or not "".join(parts).strip():
            yield from self._emit(self._fallback(r, question, "empty"))
            return
        if dropped:
            log.info("dropped citations to ids not in the prompt: %s", dropped)
        if not grounded:
            yield from self._emit(self._fallback(r, question, "ungrounded"))
            return
        unsupported = [x.text for x in sentences if x.status == "unsupported"]
        notice = None
        if unsupported:
            notice = _UNSUPPORTED_NOTICE["en" if r.lang == "en" else "zh"].format(n=len(unsupported))
        answer = Answer(question=question, standalone_question=r.condensed.standalone, answer="".join(parts).strip(),
                        citations=[Citation.of(c) for c in cited.values()], mode="generative", lang=r.lang,
                        unsupported_sentences=unsupported, notice=notice, support_score=round(r.support, 4))
        yield {"type": "answer", "answer": answer}

    # -------------------------------------------------------------- stages
    def condense(self, question: str, history: History) -> str | None:
        """The model's standalone question, or None (no history, model off or failing, odd output)."""
        if not history or not self.condense_with_model:
            return None
        try:
            out = condense_chain(self.model).invoke(condense_inputs(question, history))
        except Exception as exc:  # noqa: BLE001 - the rule-based condenser takes over
            log.warning("condensing with the model failed (%s); rule-based condenser used", exc)
            return None
        lines = (self._visible(out) or "").strip().strip("\"'“”「」").splitlines()[0:1]
        text = lines[0].strip() if lines else ""
        if not text or len(text) > max(200, 4 * len(question)) or NO_ANSWER in text:
            return None
        return text

    def _retrieve(self, question: str, history: History) -> Retrieved:
        standalone = self.condense(question, history)
        if standalone is None:
            return self.extractive.retrieve(question, history)
        r = self.extractive.retrieve(standalone, None)
        r.query = r.query.model_copy(update={"standalone": standalone, "is_followup": True})
        return r

    def _candidates(self, r: Retrieved, question: str) -> list[Clause]:
        out: list[Clause] = list(r.direct)
        limit = self.max_clauses
        if not r.direct and _SET_QUESTION.search(question):
            items = self.extractive.set_items(r)
            if len(items) >= 2:
                out.extend(items)
                limit = self.max_set_clauses
        out.extend(h.clause for h in r.hits)
        seen: set[str] = set()
        unique = [c for c in out if not (c.clause_id in seen or seen.add(c.clause_id))]  # type: ignore[func-returns-value]
        return unique[: max(limit, len(r.direct))]

    def budget(self, question: str, lang: str) -> int:
        """Tokens left for clauses: the window minus the answer's room and the fixed prompt."""
        fixed = answer_prompt().format_messages(**answer_inputs(question, [], lang))
        fixed_tokens = sum(self.counter.count(str(m.content)) + 8 for m in fixed)
        return self.max_context_tokens - answer_tokens(self.max_context_tokens) - fixed_tokens

    def _pack(self, r: Retrieved, question: str) -> list[Clause]:
        candidates = self._candidates(r, question)
        return self.counter.pack(candidates, self.budget(question, r.lang),
                                 render=lambda c: render_clause(PromptClause(c.clause_id, f"《{c.doc_title}》{c.path_text}",
                                                                             neutralize(c.text))) + "\n")

    # ------------------------------------------------------------- answers
    @staticmethod
    def _visible(raw: str) -> str | None:
        """The reply without a leading ``<think>…</think>`` block; None while that block is open."""
        if raw.lstrip().startswith("<think>"):
            m = _THINK.match(raw)
            return raw[m.end():] if m else None
        if "<think>".startswith(raw.lstrip()) and raw.strip():
            return None
        return raw

    def _extractive(self, r: Retrieved, question: str, mode: str = "extractive", notice: str | None = None) -> Answer:
        answer = self.extractive.answer_from(r, question)
        answer.mode = mode
        answer.notice = notice
        return answer

    def _fallback(self, r: Retrieved, question: str, why: str, detail: str = "") -> Answer:
        return self._extractive(r, question, "extractive", _notice(r.lang, why, detail))

    def _model_refusal(self, r: Retrieved, question: str) -> Answer:
        nearest = [Citation.of(h.clause) for h in r.hits[:3]]
        return Answer(question=question, standalone_question=r.condensed.standalone,
                      answer=self.extractive.refusal_text(r.lang, nearest), refused=True, nearest=nearest,
                      mode="generative", lang=r.lang, support_score=round(r.support, 4))

    @staticmethod
    def _emit(answer: Answer, after_partial: bool = False) -> Iterator[Event]:
        """Stream ``answer``'s text, then the answer. After a partly streamed reply the notice comes first."""
        if after_partial:
            yield {"type": "token", "text": f"\n\n⚠ {answer.notice}\n"}
        for line in answer.answer.splitlines(keepends=True):
            yield {"type": "token", "text": line}
        yield {"type": "answer", "answer": answer}
