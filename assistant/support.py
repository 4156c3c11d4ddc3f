"""The support judge: does a clause support an answer sentence?

Used by the generative mode to verify citations and by the eval suite for citation
precision/recall (ALCE-style).

The judge is a small calibrated classifier (a logistic regression over standardised features, fitted
by ``python -m eval.fit_support`` and stored as data in ``assistant/resources/support-judge.json``).
Its features, for one (sentence, clause) pair (citation markers removed, NFKC):

* **alignment**: character-bigram containment of the sentence in the clause, the longest common
  substring as a share of the sentence, the share of the sentence's content words the clause lacks;
* **negation**: negators (不, 未, 不得, 禁止, 非, 无, …; English not/no/never/without/…) in the sentence
  and in the clause, whether their presence differs, and *flips* (a negator in front of words the
  other text states without one: 非营利 vs 营利, 不得跨院共享 vs 跨院际共享);
* **modality and scope**: permission / obligation / prohibition words the clause does not use, and
  strong quantifiers (所有, 一律, 无需; all, every, only) it does not use;
* **numbers**: numbers of the sentence (Arabic, Chinese numerals through ``cn2an``, English number
  words, 万/亿/million/trillion scales, 两成 = 20%) that the clause lacks, percent and unit mismatches;
* **named slots**: places (the gazetteer), organisations (words ending in 局/部/委/办/厅/院/署/中心/
  委员会), years and Latin acronyms that the sentence names and the clause does not;
* **embedding**: the cosine of sentence (``embed_query``) and clause (``embed_documents``), the best
  cosine over the clause's comma-separated parts, whether the sentence is English, and the
  cosines' interaction with that.

The score is the model's probability that the clause supports the sentence; a sentence is supported
when it reaches ``threshold`` (chosen by cross-validation on the training pairs). One model is fitted
per embedding model, plus a text-only one for a judge without an embedder; an embedder with no
fitted model uses the text-only one. Without the model file the judge falls back to the old rule
(the larger of bigram containment and a rescaled cosine, threshold :data:`RULE_THRESHOLD`, zero
when the sentence states an Arabic number the clause lacks).

Usage::

    judge = SupportJudge(embedder)
    judge.run("外籍医生可以在福州开诊所。", ["支持符合条件的外籍及港澳台医生在榕设立诊所。"])
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from assistant.logistic import LogisticModel
from assistant.text import content_terms, normalize, strip_citations
from retrieval.dictionary import EnglishDictionary
from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)

RESOURCE = Path(__file__).resolve().parent / "resources" / "support-judge.json"
RULE_THRESHOLD = 0.725  # the old rule's threshold (used only when the model file is missing)
TEXT_ONLY = "none"  # the model key of the text-only model (a judge without an embedder)


class SupportVerdict(BaseModel):
    supported: bool
    score: float
    best: int  # index of the best-supporting clause, -1 when there is none
    scores: list[float]


# ------------------------------------------------------------------------ text
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.、)）]|[（(]\d{1,2}[)）])\s*")
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


#: Standard abbreviations written out, the same way in sentence and clause (榕 = 福州, 综保区 = 综合保税区).
_ABBREVIATIONS = [("榕城", "福州"), ("榕", "福州"), ("闽", "福建"), ("琼", "海南"), ("综保区", "综合保税区"),
                  ("自贸港", "自由贸易港"), ("自贸区", "自由贸易试验区"), ("外资企业", "外商投资企业")]
_ABBREVIATION_RE = re.compile("|".join(re.escape(a) for a, _ in _ABBREVIATIONS))
_ABBREVIATION_MAP = dict(_ABBREVIATIONS)


def _clean(text: str) -> str:
    """NFKC, quotes unified, citation markers and a leading list marker removed, spaces collapsed,
    standard abbreviations written out."""
    text = _LIST_MARKER.sub("", strip_citations(text))
    text = " ".join(normalize(part) for part in text.split()).strip()
    return _ABBREVIATION_RE.sub(lambda m: _ABBREVIATION_MAP[m.group(0)], text)


def _letters(text: str) -> str:
    """Only letters, digits, CJK, ``.`` and ``%`` (lower case): what alignment compares."""
    return re.sub(r"[^\w\u3400-\u9fff.%]", "", _clean(text)).lower()


def _bigrams(text: str) -> set[str]:
    text = _letters(text)
    return {text[i:i + 2] for i in range(len(text) - 1)}


def is_english(text: str) -> bool:
    """Mostly Latin letters and no more than a few CJK characters."""
    latin = len(_LATIN_WORD.findall(text))
    return latin >= 3 and len(_CJK.findall(text)) <= latin


def longest_common_substring(a: str, b: str) -> int:
    """Length of the longest common substring (dynamic programming, O(len(a)·len(b)))."""
    if not a or not b:
        return 0
    best = 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


# -------------------------------------------------------------------- negation
# Words that contain a negator character without negating anything.
_NOT_NEGATION = re.compile(r"不得?(?:少于|低于|超过|高于|多于)|不断|不少于|不低于|不超过|不高于|不多于|不仅|不同(?!意)|不良|不动产|不足|不平衡|无纸化|无障碍"
                           r"|无人机|无人|无线|无缝|无论|非遗|非洲|非常|并非|无形资产|未来|未成年")
_ZH_NEGATOR = re.compile(r"不得|不予|严禁|禁止|除外|没有|无需|无须|取消|不|未|非|无|禁")
_EN_NEGATOR = re.compile(r"\b(?:not|no|never|without|cannot|can't|won't|isn't|aren't|doesn't|don't|neither|nor|none"
                         r"|prohibit(?:s|ed)?|ban(?:s|ned)?|forbid(?:s|den)?|exclud(?:e|es|ed|ing)|except)\b",
                         re.IGNORECASE)


def _zh_negators(text: str) -> list[re.Match[str]]:
    return list(_ZH_NEGATOR.finditer(_NOT_NEGATION.sub(lambda m: "_" * len(m.group(0)), text)))


def negator_count(text: str) -> int:
    """Negators in ``text`` (Chinese and English; 不断, 不少于, 无纸化 … do not count)."""
    text = _clean(text)
    return len(_zh_negators(text)) + len(_EN_NEGATOR.findall(text))


def _flips(a: str, b: str) -> int:
    """Negators of ``a`` in front of two characters that ``b`` states without a negator before them."""
    out = 0
    masked_a = _NOT_NEGATION.sub(lambda m: "_" * len(m.group(0)), a)
    masked_b = _NOT_NEGATION.sub(lambda m: "_" * len(m.group(0)), b)

    def plain(text: str, masked: str, words: str) -> tuple[bool, bool]:
        """(does ``text`` state ``words``, is every occurrence negated)"""
        hits = [h.start() for h in re.finditer(re.escape(words), text)]
        return bool(hits), all(_ZH_NEGATOR.search(masked[max(0, i - 3):i]) for i in hits)

    for m in _zh_negators(a):
        after = re.sub(r"^[得予需须可能]", "", a[m.end():])[:2]
        if len(after) < 2 or not _CJK.match(after[0]):
            continue
        in_b, negated_b = plain(b, masked_b, after)
        if in_b and not negated_b and plain(a, masked_a, after)[1]:
            out += 1  # b states it, nowhere negated; a only ever negates it
    return out


def aligned_negations(sentence: str, clause: str) -> int:
    """Negators inserted, deleted or replaced inside an aligned stretch (以不公开为常态 vs 以公开为常态).

    >>> aligned_negations("国家对外国投资者的投资实行征收", "国家对外国投资者的投资不实行征收")
    1
    """
    from difflib import SequenceMatcher

    a = _NOT_NEGATION.sub(lambda m: "_" * len(m.group(0)), _clean(sentence))
    b = _NOT_NEGATION.sub(lambda m: "_" * len(m.group(0)), _clean(clause))
    ops = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    out = 0
    for k, (op, i1, i2, j1, j2) in enumerate(ops):
        if op == "equal" or k == 0 or k == len(ops) - 1:
            continue
        if ops[k - 1][0] != "equal" or ops[k + 1][0] != "equal":
            continue
        if min(ops[k - 1][2] - ops[k - 1][1], ops[k + 1][2] - ops[k + 1][1]) < 2:
            continue
        x, y = a[i1:i2], b[j1:j2]
        if len(x) > 4 or len(y) > 4:
            continue
        if bool(_ZH_NEGATOR.search(x)) != bool(_ZH_NEGATOR.search(y)):
            out += 1
    return out


# -------------------------------------------------------------------- modality
_MODALITY = {
    "permit": (re.compile(r"可以|允许|准许|鼓励|支持|可(?!能)"),
               re.compile(r"\b(?:may|allow(?:s|ed)?|permitted|encourag(?:e|es|ed))\b(?! not)", re.I)),
    "oblige": (re.compile(r"应当|必须|须|应|要求"),
               re.compile(r"\b(?:must|shall|required|obliged|mandatory|has to|have to)\b(?! not)", re.I)),
    "forbid": (re.compile(r"不得|禁止|严禁|不能|不可|不准"),
               re.compile(r"\b(?:must not|may not|cannot|prohibit(?:s|ed)?|ban(?:s|ned)?|forbid(?:s|den)?)\b", re.I)),
}
_STRONG_ZH = re.compile(r"所有|任何|一律|全部|均|全市|只能|仅|无需|无须|免于|最高|每[年周月天日]|已经|已")
_STRONG_EN = re.compile(r"\b(?:all|every|fully|only|entirely|always|whole|completely)\b", re.I)


def _modalities(text: str) -> set[str]:
    return {name for name, (zh, en) in _MODALITY.items() if zh.search(text) or en.search(text)}


def _strong(text: str) -> set[str]:
    return {m.group(0).lower() for m in _STRONG_ZH.finditer(text)} | {m.group(0).lower()
                                                                   for m in _STRONG_EN.finditer(text)}


# ---------------------------------------------------------------------- numbers
_ZH_DIGITS = "零〇一二两三四五六七八九十百千万亿"
_SCALE = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "千": 1e3, "trillion": 1e12, "billion": 1e9, "million": 1e6,
          "thousand": 1e3}
_UNIT_CHARS = "个项方家种类条批次倍年月日周天岁名人元户所座件份台辆成小时"
_UNIT_SAME = {"日": "天"}
_EN_NUMBER = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
              "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
              "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
              "hundred": 100, "dozen": 12}
_ARABIC = re.compile(r"(?<![A-Za-z\d.])(\d+(?:\.\d+)?)(万亿|亿|万|千|\s?(?:trillion|billion|million|thousand)\b)?"
                     r"(%|\s?per\s?cent\b)?(.)?", re.IGNORECASE)
_CHINESE = re.compile(rf"(百分之)?([{_ZH_DIGITS}]+)(.)?")
_EN_WORDS = re.compile(r"\b(" + "|".join(_EN_NUMBER) + r"|half)\b(\s(?:trillion|billion|million|thousand)\b)?"
                       r"(\s?per\s?cent\b)?", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


def _unit(ch: str | None) -> str:
    if not ch or ch not in _UNIT_CHARS:
        return ""
    return _UNIT_SAME.get(ch, ch)


def numbers(text: str) -> list[tuple[float, bool, str]]:
    """``(value, is_percent, unit)`` of each number ``text`` states (years, and a lone 一/one, excluded).

    >>> [(v, p) for v, p, _ in numbers("处五万元以上二十万元以下罚款，比重达75%，两成以上")]
    [(75.0, True), (50000.0, False), (200000.0, False), (20.0, True)]
    >>> [v for v, _, _ in numbers("service value added of 1.6 trillion yuan, four industries")]
    [1600000000000.0, 4.0]
    """
    import cn2an

    text = re.sub(r"(?<=\d),(?=\d{3})", "", unicodedata.normalize("NFKC", strip_citations(text)))
    text = _LIST_MARKER.sub("", text)
    out: list[tuple[float, bool, str]] = []
    for m in _ARABIC.finditer(text):
        raw, scale, pct, after = m.groups()
        if _YEAR.fullmatch(raw) and not scale and not pct:
            continue
        value = float(raw) * _SCALE.get((scale or "").strip().lower(), 1.0)
        out.append((value, bool(pct), "" if pct else _unit(after)))
    for m in _CHINESE.finditer(text):
        percent_of, run, after = m.groups()
        if not percent_of and after not in ("成", "半") and (run == "一" or not _unit(after)):
            continue  # 一个, 统一, 一体化, 三资企业, 十四五: not a claim about a quantity
        if run.strip("万亿千百") == "" and not percent_of:
            continue  # 万人体育场, 千亿级
        try:
            value = float(cn2an.cn2an(run, "smart"))
        except (ValueError, KeyError, TypeError, IndexError):
            continue
        if percent_of:
            out.append((value, True, ""))
        elif after == "成":
            out.append((value * 10, True, ""))
        elif after == "半":
            out.append((50.0, True, ""))
        elif value != 1:
            out.append((value, False, _unit(after)))
    for m in _EN_WORDS.finditer(text):
        word, scale, pct = m.groups()
        if word.lower() == "half":
            out.append((50.0, True, ""))
            continue
        value = _EN_NUMBER[word.lower()] * _SCALE.get((scale or "").strip().lower(), 1.0)
        out.append((float(value), bool(pct), ""))
    return out


def years(text: str) -> set[str]:
    return set(_YEAR.findall(unicodedata.normalize("NFKC", strip_citations(text))))


def _number_features(sentence: str, clause: str) -> dict[str, float]:
    s, c = numbers(sentence), numbers(clause)
    missing = pct = unit = 0
    for value, is_pct, u in s:
        same = [x for x in c if math.isclose(x[0], value, rel_tol=1e-6)]
        if not same:
            missing += 1
        elif all(x[1] != is_pct for x in same):
            pct += 1
        elif u and all(x[2] and x[2] != u for x in same):
            unit += 1
    return {"num_missing": float(missing), "num_percent_mismatch": float(pct), "num_unit_mismatch": float(unit),
            "num_any": float(bool(s))}


# ------------------------------------------------------------------ named slots
_ORG = re.compile(r"(?<=[\u4e00-\u9fff]{2})(?:委员会|中心|局|部|委|办|厅|院|署)(?![门分位件长理法公事托派校士系面限势城区名员])")
_NOT_ORG = {"全部", "内部", "外部", "东部", "西部", "南部", "北部", "中部", "局部", "干部", "开办", "举办", "创办", "承办",
            "主办", "协办", "督办", "兴办", "合办", "代办", "申办", "医院", "影院", "剧院", "书院", "好办", "怎办"}
_PLACE_ALIASES = {"榕": "福州市", "闽": "福建省", "琼": "海南省", "中国": "中国", "在华": "中国", "境内": "中国",
                  "内地": "中国", "china": "中国", "chinese": "中国", "mainland": "中国"}


_PLACE_SHORT = {"香港": "港", "澳门": "澳", "台湾": "台", "福建": "闽", "福州": "榕", "海南": "琼", "广东": "粤",
                "上海": "沪", "北京": "京"}
_TAIWAN = re.compile(r"[榕闽]台|福州台|福建台|港澳台|台港澳|台胞|台商|台企|台资|对台|涉台")


def places(text: str) -> set[str]:
    """Canonical places ``text`` names (the gazetteer, plus 榕 = 福州, 闽 = 福建 and China)."""
    from assistant.places import Gazetteer

    found = set(Gazetteer.load().find(text))
    low = text.lower()
    found |= {canon for alias, canon in _PLACE_ALIASES.items() if alias in low}
    if _TAIWAN.search(text):
        found.add("台湾省")
    if re.search(r"港澳", text):
        found |= {"香港特别行政区", "澳门特别行政区"}
    return found


def _place_missing(sentence: str, clause: str) -> int:
    from assistant.places import Gazetteer

    gaz = Gazetteer.load()
    s, c = places(sentence), places(clause)
    clause_elsewhere = any(p != "中国" and not gaz.is_home(p) for p in c)
    missing = 0
    for p in s - c:
        short = re.sub(r"(省|市|特别行政区)$", "", p)
        if p == "中国" or short in clause or _PLACE_SHORT.get(short, "\0") in clause:
            continue
        if gaz.is_home(p) and not clause_elsewhere:
            continue  # 福州 is implicit in a clause of the Fuzhou plan
        missing += 1
    return missing


def organisations(text: str) -> set[str]:
    """Names ending in 局/部/委/办/厅/院/署/中心/委员会: the suffix with the two characters before it.

    >>> sorted(organisations("由国家数据局单独制定，须经工信部批准，全部开办"))
    ['工信部', '数据局']
    """
    text = _clean(text)
    out = set()
    for m in _ORG.finditer(text):
        word = text[m.start() - 2:m.end()]
        if word[-2:] in _NOT_ORG or not _CJK.match(word[0]):
            continue
        out.add(word)
    return out


def _abbreviated_in(word: str, text: str, span: int = 12) -> bool:
    """Is ``word`` in ``text``, or its characters in order within ``span`` characters (工信部 in
    工业和信息化主管部门)?"""
    if word in text:
        return True
    return re.search(f".{{0,{span}}}?".join(map(re.escape, word)), text) is not None


def _acronyms(text: str) -> set[str]:
    return {m.lower() for m in re.findall(r"(?<![A-Za-z])[A-Z][A-Z0-9]{1,9}(?![A-Za-z])", unicodedata.normalize(
        "NFKC", strip_citations(text)))}


# ---------------------------------------------------------------- substitutions
#: Opposite or mutually exclusive word pairs (direction, inside/outside, level, ownership, quantity, scope).
_OPPOSITES = [("东", "西"), ("南", "北"), ("内", "外"), ("上", "下"), ("前", "后"), ("高", "低"), ("大", "小"),
              ("多", "少"), ("增", "减"), ("正", "负"), ("单", "双"), ("公", "私"), ("公立", "民营"), ("国有", "民营"),
              ("进", "出"), ("长", "短"), ("新", "旧"), ("强", "弱"), ("宽", "严"), ("省", "市"), ("市", "县"),
              ("国家", "地方"), ("全国", "全球"), ("全国", "全省"), ("全省", "全市"), ("国内", "国际"), ("中央", "地方"),
              ("最高", "最低"), ("以上", "以下"), ("上限", "下限"), ("允许", "禁止"), ("鼓励", "限制"), ("放宽", "收紧"),
              ("强化", "取消"), ("强化", "弱化"), ("扩大", "缩小"), ("提高", "降低"), ("核心", "支撑"), ("主要", "次要"),
              ("营利", "非营利"), ("独资", "合资"), ("服务业", "制造业"), ("生产性", "生活性"), ("正面", "负面"),
              ("互认", "单向"), ("事前", "事后"), ("先", "后"), ("同意", "拒绝"), ("季", "年"), ("月", "年"),
              ("周", "月"), ("天", "周")]


def opposite_swaps(sentence: str, clause: str) -> int:
    """Aligned stretches where the sentence says one of a pair of opposites and the clause the other.

    >>> opposite_swaps("对接国家算力枢纽东部节点优质算力", "对接国家算力枢纽西部节点优质算力")
    1
    """
    from difflib import SequenceMatcher

    a, b = _letters(sentence), _letters(clause)
    out = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "replace" or i2 - i1 > 8 or j2 - j1 > 8:
            continue
        x, y = a[max(0, i1 - 1):i2 + 1], b[max(0, j1 - 1):j2 + 1]
        if any((p in x and q in y and p not in y and q not in x) or (q in x and p in y and q not in y and p not in x)
               for p, q in _OPPOSITES):
            out += 1
    return out


# --------------------------------------------------------------------- features
#: Text features (every model) and embedding features (models fitted with an embedder).
TEXT_FEATURES = ("containment", "lcs_ratio", "novel_terms", "neg_sentence", "neg_clause", "neg_differ",
                 "neg_flips", "neg_aligned", "modality_new", "strong_new", "num_missing", "num_percent_mismatch", "num_unit_mismatch",
                 "num_any", "place_missing", "org_missing", "year_missing", "acronym_missing", "opposite_swaps",
                 "conflicts", "lang_en", "novel_en")
EMBEDDING_FEATURES = ("cos", "cos_part", "cos_en", "cos_part_en")


_CONFLICTS = ("neg_flips", "neg_aligned", "num_missing", "num_percent_mismatch", "place_missing", "org_missing", "year_missing",
              "acronym_missing", "opposite_swaps", "strong_new")


def text_features(sentence: str, clause: str) -> dict[str, float]:
    """The features of one pair that need no embedding model (see the module docstring)."""
    s_clean, c_clean = _clean(sentence), _clean(clause)
    s_letters, c_letters = _letters(sentence), _letters(clause)
    grams = _bigrams(sentence)
    containment = len(grams & _bigrams(clause)) / len(grams) if grams else 0.0
    english = is_english(s_clean) and not is_english(c_clean)
    terms = [t for t in content_terms(s_clean) if _CJK.match(t)]
    c_low = c_clean.lower()
    novel = sum(1 for t in terms if t not in c_low) / len(terms) if terms else 0.0
    neg_s, neg_c = negator_count(sentence), negator_count(clause)
    flips = 0 if english else _flips(s_clean, c_clean) + _flips(c_clean, s_clean)
    out = {
        "containment": containment,
        "lcs_ratio": longest_common_substring(s_letters, c_letters) / len(s_letters) if s_letters else 0.0,
        "novel_terms": novel,
        "neg_sentence": float(neg_s), "neg_clause": float(neg_c), "neg_differ": float((neg_s > 0) != (neg_c > 0)),
        "neg_flips": float(flips),
        "neg_aligned": float(0 if english else aligned_negations(s_clean, c_clean)),
        "modality_new": float(len(_modalities(s_clean) - _modalities(c_clean))),
        "strong_new": float(len({w for w in _strong(s_clean) if w not in c_low} if not english
                                else _strong(s_clean) - _strong(c_clean))),
        **_number_features(sentence, clause),
        "place_missing": float(_place_missing(s_clean, c_clean)),
        "org_missing": float(sum(1 for o in organisations(sentence) if not _abbreviated_in(o, c_clean))),
        "year_missing": float(len(years(sentence) - years(clause))),
        "acronym_missing": float(len(_acronyms(sentence) - _acronyms(clause)) if _acronyms(clause) else 0),
        "opposite_swaps": float(0 if english else opposite_swaps(s_clean, c_clean)),
        "lang_en": float(english),
        "novel_en": novel_english_words(s_clean, c_low) if english else 0.0,
    }
    out["conflicts"] = float(sum(out[k] > 0 for k in _CONFLICTS))
    return out


def novel_english_words(sentence: str, clause: str) -> float:
    """The share of an English sentence's translatable words (glossary entries, CC-CEDICT senses) none of whose
    Chinese renderings the clause contains: the English counterpart of ``novel_terms``.

    >>> novel_english_words("The plan lifts caps on basic telecom services.", "放宽增值电信业务外资准入。") > 0
    True
    """
    units = EnglishDictionary.load().renderings(sentence)
    if not units:
        return 0.0
    return sum(1 for u in units if not any(h.lower() in clause for h in u)) / len(units)


def clause_parts(clause: str) -> list[str]:
    """The clause's parts between commas, semicolons and full stops (with the whole clause)."""
    parts = [p for p in re.split(r"[，,；;。！？!?\n]+", clause) if len(p.strip()) >= 4]
    return [clause] + [p for p in parts if p != clause]


# ------------------------------------------------------------------------ model
class SupportModel(LogisticModel):
    """A fitted logistic regression: standardised features → P(the clause supports the sentence)."""

    embedder: str  # the embedding model whose cosines it read, or "none" (text features only)
    heldout: dict[str, Any] = Field(default_factory=dict)  # figures on the held-out pairs


class SupportModelFile(BaseModel):
    """``assistant/resources/support-judge.json``: the models, the split and the figures (data, not code)."""

    command: str
    fitted_on: list[str]
    heldout_ids: list[str]
    split: dict[str, Any] = Field(default_factory=dict)
    models: list[SupportModel]
    rule_heldout: dict[str, Any] = Field(default_factory=dict)  # the old rule (use-m3) on the held-out pairs

    @classmethod
    def load(cls, path: Path = RESOURCE) -> SupportModelFile | None:
        if not path.exists():
            return None
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path = RESOURCE) -> Path:
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return path

    def model_for(self, spec: str | None) -> SupportModel | None:
        """The model fitted for ``spec`` (``None``: no embedder), else the text-only one."""
        by = {m.embedder: m for m in self.models}
        return by.get(spec or TEXT_ONLY) or by.get(TEXT_ONLY)


# ------------------------------------------------------------------------ judge
class SupportJudge:
    """Judge sentence–clause support with the fitted model (or, without its file, the old rule).

    Args:
        embedder: optional; without it the text-only model judges (English sentences then rarely pass).
        threshold: the score a sentence needs to count as supported (default: the model's, else
            :data:`RULE_THRESHOLD`).
        cos_floor, cos_ceiling: the old rule's cosine range rescaled to 0..1.
        model_path: the model file (default ``assistant/resources/support-judge.json``).
        use_model: ``False`` forces the old rule.
    """

    def __init__(self, embedder: Embedder | None = None, threshold: float | None = None,
                 cos_floor: float = 0.35, cos_ceiling: float = 0.75, model_path: Path | None = None,
                 use_model: bool = True) -> None:
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.embedder = embedder
        self.cos_floor = cos_floor
        self.cos_ceiling = cos_ceiling
        self.model_file = SupportModelFile.load(model_path or RESOURCE) if use_model else None
        spec = getattr(embedder, "spec", None) if embedder is not None else None
        self.model = self.model_file.model_for(spec) if self.model_file else None
        if use_model and self.model is None:
            log.warning("support judge: no model file at %s; using the containment/cosine rule", model_path or RESOURCE)
        default = self.model.threshold if self.model else RULE_THRESHOLD
        self.threshold = float(threshold if threshold is not None else default)
        self._doc_cache: dict[str, np.ndarray] = {}

    @property
    def uses_embedding(self) -> bool:
        return self.embedder is not None and (self.model is None or self.model.embedder != TEXT_ONLY)

    # ------------------------------------------------------------- features
    def containment(self, sentence: str, clause: str) -> float:
        grams = _bigrams(sentence)
        if not grams:
            return 0.0
        return len(grams & _bigrams(clause)) / len(grams)

    def _docs(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        found: dict[str, np.ndarray | None] = {t: self._doc_cache.get(t) for t in texts}
        missing = [t for t, v in found.items() if v is None]
        if missing:
            if len(self._doc_cache) > 20000:
                self._doc_cache = {}
            for t, v in zip(missing, self.embedder.embed_documents(missing), strict=True):
                found[t] = self._doc_cache[t] = np.asarray(v, dtype=float)
        return np.stack([v for v in (found[t] for t in texts) if v is not None])

    def features(self, sentence: str, clauses: list[str]) -> list[dict[str, float]]:
        """The model's features of ``sentence`` against each clause."""
        rows = [text_features(sentence, c) for c in clauses]
        if self.uses_embedding and clauses:
            assert self.embedder is not None
            s = np.asarray(self.embedder.embed_query(_clean(sentence)), dtype=float)
            for row, clause in zip(rows, clauses, strict=True):
                cos = self._docs(clause_parts(clause)) @ s
                row["cos"] = float(cos[0])
                row["cos_part"] = float(cos.max())
                row["cos_en"] = row["cos"] * row["lang_en"]
                row["cos_part_en"] = row["cos_part"] * row["lang_en"]
        return rows

    # --------------------------------------------------------------- scores
    def scores(self, sentence: str, clauses: list[str]) -> list[float]:
        """The support score (0..1) of ``sentence`` against each clause."""
        if self.model is not None:
            return [self.model.probability(f) for f in self.features(sentence, clauses)]
        return self._rule_scores(sentence, clauses)

    def _rule_scores(self, sentence: str, clauses: list[str]) -> list[float]:
        out = [self.containment(sentence, c) for c in clauses]
        if self.embedder is not None and clauses:
            s = self.embedder.embed_query(strip_citations(sentence))
            c = self.embedder.embed_documents(list(clauses))
            cos = np.asarray(c @ s, dtype=float)
            sem = np.clip((cos - self.cos_floor) / (self.cos_ceiling - self.cos_floor), 0.0, 1.0)
            out = [max(a, float(b)) for a, b in zip(out, sem, strict=True)]
        return [0.0 if self.number_conflict(sentence, c) else score for score, c in zip(out, clauses, strict=True)]

    @staticmethod
    def number_conflict(sentence: str, clause: str) -> bool:
        """Does the sentence state a number (Arabic, Chinese or English; years included) the clause lacks?"""
        f = _number_features(sentence, clause)
        return bool(f["num_missing"] or f["num_percent_mismatch"] or years(sentence) - years(clause))

    def run(self, sentence: str, clauses: list[str]) -> SupportVerdict:
        """Verdict for ``sentence`` against the candidate ``clauses`` (best one counts)."""
        if not sentence.strip():
            raise ValueError("sentence is empty")
        scores = self.scores(sentence, clauses)
        if not scores:
            return SupportVerdict(supported=False, score=0.0, best=-1, scores=[])
        best = int(np.argmax(scores))
        return SupportVerdict(supported=scores[best] >= self.threshold, score=scores[best], best=best, scores=scores)
