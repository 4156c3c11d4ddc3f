"""Turn a follow-up and the conversation history into a standalone question.

The rule-based condenser (used without an LLM) recognises short or elliptical follow-ups
("那境外医疗人员呢？", "那2026年呢？", "What about nurses?") and carries the previous user
question along as context.

>>> Condenser().run("那境外医疗人员呢？", [("外国医生能开诊所吗？", "…")])
Condensed(core='境外医疗人员', standalone='境外医疗人员 外国医生能开诊所吗？', is_followup=True, context='境外医疗人员 …')
"""

from __future__ import annotations

import re
from typing import NamedTuple

from assistant.text import strip_citations

_FOLLOWUP_START = re.compile(r"^(那么|那|还有|另外|此外|以及|and\b|what about\b|how about\b|and what about\b)\s*",
                             re.IGNORECASE)
_FOLLOWUP_END = re.compile(r"(呢|呢？|呢\?|吗？)$")
_TRAILING = re.compile(r"[？?。！!\s]+$")

History = list[tuple[str, str]]


_PRONOUN_START = re.compile(r"^(它|它们|其|这|该|此|上述|前述|这一|这个|这些|那个|那些|(it|its|they|their|this|that|these|those)\b)",
                            re.IGNORECASE)


class Condensed(NamedTuple):
    core: str
    standalone: str
    is_followup: bool
    context: str = ""  # the previous answer's opening words, for retrieval only


class Condenser:
    """Rule-based question condenser.

    Args:
        max_followup_chars: a question this short (after stripping) counts as a follow-up
            when there is history.
    """

    def __init__(self, max_followup_chars: int = 12) -> None:
        self.max_followup_chars = max_followup_chars

    def run(self, question: str, history: History | None = None) -> Condensed:
        question = question.strip()
        core = _TRAILING.sub("", question)
        starts = bool(_FOLLOWUP_START.search(core))
        core = _FOLLOWUP_START.sub("", core)
        ends = bool(re.search(r"呢$", core))
        core = re.sub(r"呢$", "", core).strip() or question
        if not history:
            return Condensed(core=question, standalone=question, is_followup=False)
        previous, last_answer = next(((q, a) for q, a in reversed(history) if q and q.strip()), ("", ""))
        short = len(core) <= self.max_followup_chars
        pronoun = bool(_PRONOUN_START.search(core))
        is_followup = bool(previous) and (starts or ends or short or pronoun)
        if not is_followup:
            return Condensed(core=question, standalone=question, is_followup=False)
        context = strip_citations(last_answer or "").strip()[:200]
        return Condensed(core=core, standalone=f"{core} {previous.strip()}", is_followup=True,
                         context=f"{core} {context}" if context else "")
