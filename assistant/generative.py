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
4. **Stream** – the answer streams as tokens; clause ids are shown as their labels as soon as a
   ``[…]`` marker is complete; made-up ids are not shown. A reply ``NO_ANSWER`` is a refusal.
5. **Verify** – :class:`~assistant.verify.CitationVerifier`.
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

from assistant.conversation import Condensed, History
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
from assistant.verify import MARKER, CitationVerifier
from corpus.models import Clause

log = logging.getLogger(__name__)

__all__ = ["GenerativeAnswerer"]

Event = dict[str, Any]
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_SPLIT_IDS = re.compile(r"\s*[,，;；、|]\s*|\s+(?=\S+/)")

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


class _LabelStream:
    """Rewrite ``[clause id]`` markers to ``[label]`` in a token stream; drop unknown ids."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.buf = ""

    def _map(self, inner: str) -> str:
        inner = inner.strip()
        if inner in self.labels:
            return f"[{self.labels[inner]}]"
        if inner in self.labels.values():
            return f"[{inner}]"
        parts = [p for p in _SPLIT_IDS.split(inner) if p]
        return "".join(f"[{self.labels[p]}]" if p in self.labels else (f"[{p}]" if p in self.labels.values() else "")
                       for p in parts)

    def feed(self, text: str) -> str:
        self.buf += text
        out: list[str] = []
        while self.buf:
            i = min((j for j in (self.buf.find("["), self.buf.find("【")) if j >= 0), default=-1)
            if i < 0:
                out.append(self.buf)
                self.buf = ""
                break
            out.append(self.buf[:i])
            rest = self.buf[i:]
            m = MARKER.match(rest)
            if m:
                out.append(self._map(m.group(1) or m.group(2)))
                self.buf = rest[m.end():]
                continue
            close = "]" if rest[0] == "[" else "】"
            if close not in rest and len(rest) <= 200 and "\n" not in rest:
                self.buf = rest  # wait for the marker to complete
                break
            out.append(rest[0])
            self.buf = rest[1:]
        return "".join(out)

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out


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
        """``{"type": "token", "text"}`` events as the model writes, then ``{"type": "answer", "answer"}``.

        The streamed text is the model's draft (clause ids shown as labels); the final answer is the
        verified one and may differ (citations inserted or removed, unsupported sentences marked,
        or the extractive fallback). Clients show the final answer's text when it arrives.
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

        rewriter = _LabelStream({c.clause_id: c.label for c in clauses})
        raw = ""
        visible: str | None = None  # the reply without a leading <think> block, once known
        started = False
        refused = False
        try:
            asked = r.condensed.standalone or question  # the answer prompt has no history: the standalone form
            for chunk in answer_chain(model).stream(answer_inputs(asked, prompt_clauses, r.lang)):
                raw += chunk
                if started:
                    text = rewriter.feed(chunk)
                    if text:
                        yield {"type": "token", "text": text}
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
                text = rewriter.feed(head)
                if text:
                    yield {"type": "token", "text": text}
            if started:
                tail = rewriter.flush()
                if tail:
                    yield {"type": "token", "text": tail}
        except Exception as exc:  # noqa: BLE001 - any model failure falls back
            log.warning("chat model failed (%s: %s); extractive fallback", type(exc).__name__, exc)
            if "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError):
                why = "timeout"
            elif "no generation chunks" in str(exc).lower():  # LangChain's word for an empty stream
                why = "empty"
            else:
                why = "error"
            yield from self._emit(self._fallback(r, question, why, type(exc).__name__), stream=not started)
            return

        if refused:
            yield from self._emit(self._model_refusal(r, question), stream=not started)
            return
        reply = (self._visible(raw) or "").strip()
        if not reply:
            yield from self._emit(self._fallback(r, question, "empty"), stream=not started)
            return
        v = self.verifier.run(reply, clauses, texts=shown, lang=r.lang)
        if v.dropped_ids:
            log.info("dropped citations to ids not in the prompt: %s", v.dropped_ids)
        if v.supported_count == 0:
            yield from self._emit(self._fallback(r, question, "ungrounded"), stream=False)
            return
        notice = None
        if v.unsupported:
            notice = _UNSUPPORTED_NOTICE["en" if r.lang == "en" else "zh"].format(n=len(v.unsupported))
        answer = Answer(question=question, standalone_question=r.condensed.standalone, answer=v.text,
                        citations=[Citation.of(c) for c in v.citations], mode="generative", lang=r.lang,
                        unsupported_sentences=v.unsupported, notice=notice, support_score=round(r.support, 4))
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
        out = (self._visible(out) or "").strip().strip("\"'“”「」").splitlines()[0:1]
        text = out[0].strip() if out else ""
        if not text or len(text) > max(200, 4 * len(question)) or NO_ANSWER in text:
            return None
        return text

    def _retrieve(self, question: str, history: History) -> Retrieved:
        standalone = self.condense(question, history)
        if standalone is None:
            return self.extractive.retrieve(question, history)
        r = self.extractive.retrieve(standalone, None)
        r.condensed = Condensed(core=r.condensed.core, standalone=standalone, is_followup=True)
        return r

    def _candidates(self, r: Retrieved, question: str) -> list[Clause]:
        out: list[Clause] = list(r.direct)
        limit = self.max_clauses
        if not r.direct and _SET_QUESTION.search(question):
            items = self.extractive._set_items(r)
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
        answer = self.extractive._answer(r, question)
        answer.mode = mode
        answer.notice = notice
        return answer

    def _fallback(self, r: Retrieved, question: str, why: str, detail: str = "") -> Answer:
        return self._extractive(r, question, "extractive", _notice(r.lang, why, detail))

    def _model_refusal(self, r: Retrieved, question: str) -> Answer:
        nearest = [Citation.of(h.clause) for h in r.hits[:3]]
        return Answer(question=question, standalone_question=r.condensed.standalone,
                      answer=self.extractive._refusal_text(r.lang, nearest), refused=True, nearest=nearest,
                      mode="generative", lang=r.lang, support_score=round(r.support, 4))

    @staticmethod
    def _emit(answer: Answer, stream: bool = True) -> Iterator[Event]:
        if stream:
            for line in answer.answer.splitlines(keepends=True):
                yield {"type": "token", "text": line}
        yield {"type": "answer", "answer": answer}
