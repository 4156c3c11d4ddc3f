"""Which documents a text names, by title, short title, English title or alias.

A name inside a longer name that the text also uses is not a mention of its own: "外商投资法实施条例"
names the implementing regulation, not the Foreign Investment Law as well (and a clause number after it
belongs to the regulation). Longer names claim their characters first; a shorter name counts only where
it stands on characters no longer name has claimed.

Usage::

    >>> from corpus.models import DocumentMeta
    >>> docs = {"fil": DocumentMeta(doc_id="fil", title="中华人民共和国外商投资法", short_title="外商投资法"),
    ...         "fil-reg": DocumentMeta(doc_id="fil-reg", title="中华人民共和国外商投资法实施条例",
    ...                                 short_title="外商投资法实施条例")}
    >>> documents_named("外商投资法实施条例第二十七条怎么说？", docs)
    ['fil-reg']
    >>> documents_named("外商投资法实施条例和外商投资法有何不同", docs)
    ['fil-reg', 'fil']
"""

from __future__ import annotations

from collections.abc import Mapping

from corpus.models import DocumentMeta


def names_of(meta: DocumentMeta) -> set[str]:
    """Every name a question may use for the document (title with and without 中华人民共和国)."""
    names = {meta.title, meta.short_title, meta.title.replace("中华人民共和国", ""), meta.title_en, *meta.aliases}
    return {n.strip() for n in names if n and n.strip()}


class NameTable:
    """The names of a set of documents, longest first, ready for many :meth:`named` calls (built once per
    corpus snapshot)."""

    def __init__(self, documents: Mapping[str, DocumentMeta]) -> None:
        self.entries = sorted(((name.lower(), doc_id, meta.kind) for doc_id, meta in documents.items()
                               for name in names_of(meta)), key=lambda e: -len(e[0]))
        # entries by their first two characters: a text can only hold the names whose first pair it holds
        self._by_pair: dict[str, list[int]] = {}
        self._short: list[int] = []  # one-character names
        for i, (name, _, _) in enumerate(self.entries):
            if len(name) < 2:
                self._short.append(i)
            else:
                self._by_pair.setdefault(name[:2], []).append(i)

    def named(self, text: str, min_len: int = 3, skip_kinds: tuple[str, ...] = ()) -> list[str]:
        """Ids of the documents ``text`` names, in the order of their first mention (see the module docstring).

        ``min_len``: shortest name that counts (short aliases such as 方案 match too much); ``skip_kinds``:
        documents of these kinds are not looked for (their names then claim nothing either).
        """
        lowered = text.lower()
        candidates = set(self._short)
        for k in range(len(lowered) - 1):
            candidates.update(self._by_pair.get(lowered[k:k + 2], ()))
        return self._claim(lowered, sorted(candidates), min_len, skip_kinds)

    def _claim(self, lowered: str, entries: list[int], min_len: int, skip_kinds: tuple[str, ...]) -> list[str]:
        """The rule of :meth:`named` over these entries (positions in the table, in its order: longest first)."""
        claimed = [False] * len(lowered)
        first: dict[str, int] = {}
        for i in entries:
            name, doc_id, kind = self.entries[i]
            if len(name) < min_len or kind in skip_kinds:
                continue
            start = lowered.find(name)
            while start >= 0:
                end = start + len(name)
                if not all(claimed[start:end]):
                    for k in range(start, end):
                        claimed[k] = True
                    first[doc_id] = min(first.get(doc_id, start), start)
                start = lowered.find(name, start + 1)
        return sorted(first, key=lambda d: first[d])


def documents_named(text: str, documents: Mapping[str, DocumentMeta], min_len: int = 3) -> list[str]:
    """Ids of the documents ``text`` names, in the order of their first mention.

    ``min_len``: shortest name that counts (short aliases such as 方案 match too much).
    """
    return NameTable(documents).named(text, min_len)
