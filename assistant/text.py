"""Small text helpers shared by the answerers, the refusal scorer and the support judge."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from corpus.parsing import split_sentences
from retrieval.lexical import detect_lang

__all__ = ["detect_lang", "content_terms", "normalize", "split_sentences", "idf_weights", "coverage",
           "strip_citations", "clip"]

_CJK = re.compile(r"[\u3400-\u9fff]")
# Question words and fillers that say nothing about the topic.
_ZH_STOP = sorted([
    "请问", "请", "有哪些", "哪些", "哪几", "什么", "多少", "怎么样", "怎么", "怎样", "如何", "是否", "能否",
    "可不可以", "能不能", "有没有", "可以", "能", "在哪里", "在哪儿", "哪里", "哪儿", "在哪", "哪个", "哪", "一下", "关于", "吗",
    "呢", "吧", "啊", "呀", "的", "了", "是", "都", "还", "那么", "那", "么", "我们", "我", "你们", "你", "他们",
    "一些", "这个", "这些", "具体", "主要", "相关", "涉及", "方面", "内容", "情况", "介绍", "说说", "讲讲",
    "提到", "提出", "规定了", "列举", "一共", "分别", "谁", "几", "吗？", "打算", "准备", "希望", "想要", "想",
    "做些", "做法", "所说", "这类", "这块", "这一条", "这条", "不要", "要不要", "会不会", "样", "下来", "之后",
    "考虑", "安排", "计划", "有没有", "是不是", "需不需要", "应该", "怎么办", "办法", "哪方面", "什么样",
    # colloquial and interrogative forms (the question word is not the topic: 多久 is no corpus word)
    "啥", "咋", "为啥", "咋样", "啥样", "多久", "多长时间", "多长", "多大", "多高", "何时", "何种", "哪天", "几时",
    "啥时候", "什么时候", "多会儿",
], key=len, reverse=True)
_ZH_STOP_RE = re.compile("|".join(map(re.escape, _ZH_STOP)))
_EN_STOP = {
    "the", "a", "an", "of", "to", "in", "on", "for", "and", "or", "is", "are", "be", "can", "could", "do", "does",
    "what", "which", "who", "whom", "how", "when", "where", "why", "will", "would", "should", "there", "any", "i",
    "we", "you", "my", "our", "it", "its", "this", "that", "these", "those", "with", "by", "from", "about", "as",
    "at", "plan", "fuzhou", "s", "me", "tell", "please", "under", "according", "did", "have", "has",
}


def normalize(text: str) -> str:
    """NFKC, no whitespace, Chinese and Western quote marks unified (for quote matching)."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\u201c\u201d\u300c\u300d\u300e\u300f\"]", '"', text)
    text = re.sub(r"[\u2018\u2019']", "'", text)
    return re.sub(r"\s+", "", text)


def strip_citations(text: str) -> str:
    """Remove ``[label]`` citation markers from an answer sentence."""
    from assistant.citations import strip

    return strip(text)


_FUNCTION_CHARS = set("到的了和与及或在中有是对把被为将从向以由等之其该各个也都就还又并而且但要会能可让给这那哪吗呢吧啊么什怎多少几请问我你他她它们如何否")


@functools.cache
def _segmenter() -> Any:
    """A jieba tokenizer over the assistant's small dictionary (see :mod:`assistant.jieba_dict`)."""
    import logging

    import jieba

    from assistant.jieba_dict import DICT_PATH

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer(dictionary=str(DICT_PATH))
    tokenizer.initialize()
    return tokenizer


def content_terms(text: str) -> list[str]:
    """Topic-bearing words of a question (jieba words without question words), Latin words.

    >>> content_terms("哪些任务涉及数据跨境？")
    ['任务', '数据', '跨境']
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _ZH_STOP_RE.sub(" ", text)
    terms: list[str] = []
    for word in _segmenter().lcut(text):
        word = word.strip()
        if not word or not re.search(r"[\u3400-\u9fffa-z0-9]", word):
            continue
        if _CJK.match(word):
            if len(word) == 1 and word in _FUNCTION_CHARS:
                continue
            terms.append(word)
        elif word not in _EN_STOP and len(word) > 1:
            terms.append(word)
    seen: set[str] = set()
    return [t for t in terms if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def idf_weights(terms: Iterable[str], df: dict[str, int], n_docs: int) -> dict[str, float]:
    """IDF of each term; a term the corpus never contains gets the highest weight."""
    return {t: math.log((n_docs + 1) / (df.get(t, 0) + 0.5)) for t in terms}


def coverage(weights: dict[str, float], text: str) -> float:
    """Share of the terms' IDF mass that occurs in ``text`` (0..1)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    haystack = _folded(text)
    return sum(w for t, w in weights.items() if t in haystack) / total


@functools.lru_cache(maxsize=8192)
def _folded(text: str) -> str:
    """NFKC, lower-cased: the form coverage tests terms in (clause texts recur across questions)."""
    return unicodedata.normalize("NFKC", text).lower()


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (error messages that quote the input).

    >>> clip("unknown clause id 'aaaaaaaaaa'", 20)
    "unknown clause id '…"
    """
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
