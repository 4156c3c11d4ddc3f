"""Query analysis, computed once per question: language, terms and the question's *slots*.

Retrieval, the answerability gate and both answerers read the :class:`Query`; nothing downstream
segments the question again.

Slots:

* ``places``: places the question names (:mod:`assistant.places`; 榕/本市 count as 福州);
* ``documents``: titles in 《…》 and law-like names (``…法``, ``…条例``, ``…规定``, ``…办法``);
* ``wenhao``: document numbers such as ``商资函〔2025〕84号``;
* ``articles``: article numbers (第40条 ↔ 第四十条, via ``cn2an``);
* ``years``: four-digit years (2025年, "in 2030");
* ``kind``: the kind of answer asked (amount, rate, count, deadline, date, contact, materials,
  procedure, yes-no, list, fact).

Usage::

    analyzer = QueryAnalyzer()
    q = analyzer.run("2025年服务业增加值是多少？")
    q.kind, q.years      # ('amount', [2025])
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.conversation import Condensed, Condenser, History
from assistant.places import HOME_ALIASES, HOME_CITY, NATIONAL, Gazetteer
from assistant.text import content_terms, detect_lang
from retrieval.glossary import expand_query

AnswerKind = Literal["amount", "rate", "count", "deadline", "date", "contact", "materials", "quantity", "procedure",
                     "location", "organisation", "yes-no", "list", "fact"]

#: Words that name the kind of answer wanted, not its topic.
META_WORDS = frozenset({"任务", "举措", "措施", "方案", "政策", "条款", "内容", "工作", "涉及", "相关", "有关", "方面",
                        "规定", "试点", "中", "里", "和", "tasks", "task", "measures", "measure", "pilot", "plan",
                        "clauses", "related", "mention", "mentions", "involve", "involving"})

# Order matters: the first kind whose pattern matches wins.
_KINDS: list[tuple[AnswerKind, re.Pattern[str]]] = [
    ("contact", re.compile(r"电话(是|号码|多少|呢)|电话和|和电话|地址|电话号码|联系方式|联系人|联系电话|咨询电话|热线|邮箱|电子邮件|网址|官网|网站|"
                           r"办公地址|详细地址|门牌|办公时间|上班时间|对接人|(几点|什么时候|啥时候)(上班|下班|开门|关门|办公)|"
                           r"周末(上班|办公|开门)|\b(phone|contact|e-?mail|hotline|website|office hours|opening hours|"
                           r"street address|mailing address|reach (them|him|her|the office|someone))\b", re.I)),
    ("materials", re.compile(r"(准备|提交|提供|交|带|递交|报送)(哪些|什么|啥|些什么)?(材料|文件|证件|资料)|(什么|哪些|啥)(材料|证件)|材料(有|是|包括)?(哪些|什么|啥)|"
                             r"材料清单|申请表|\b(what documents|which documents|paperwork|materials|documents (do|should|must) "
                             r"(i|we))\b", re.I)),
    ("rate", re.compile(r"比例|比重|占比|百分之|百分比|税率|费率|利率|增长率|增速|增长多少|几成|"
                        r"\b(rate|percentage|percent|share of|proportion)\b", re.I)),
    ("amount", re.compile(r"多少钱|多少元|多少万|多少亿|多少资金|金额|额度|罚多少|罚款多少|补贴多少|奖励多少|多少补贴|"
                          r"多大规模|规模多大|增加值是多少|达到多少|多少[^，。？?]{0,4}费|费用?(是|要|得)?多少|收费标准|"
                          r"\b(how much|what amount|amount of|how large|what fees?|fees? (is|are) charged|fees? charged)\b", re.I)),
    ("count", re.compile(r"多少个|多少家|多少项|多少名|多少人|多少条|多少类|多少种|(?<!哪)几(个|家|项|类|种|条|名)|"
                         r"\b(how many|number of)\b", re.I)),
    ("deadline", re.compile(r"多久|多长时间|多少天|多少日|(?<!哪)几(天|日|个月)|期限|时限|截止|最晚|最迟|有效期|"
                            r"\b(how long|deadline|time limit|within how|how soon|valid for|how often)\b", re.I)),
    ("date", re.compile(r"什么时候|何时|哪一年|哪年|几月|日期|哪天|时间节点|\b(when|what date|which year|what year)\b", re.I)),
    ("quantity", re.compile(r"多少|上限|下限|最多|最少|最高|最低|标准是|几成|"
                            r"\b(maximum|minimum|fee|fees|cap|limit|threshold|how much|how many)\b", re.I)),
    ("procedure", re.compile(r"(怎么|如何|怎样|咋)(申请|办理|办|备案|登记|报批|审批)|(申请|办理|审批|报批|登记|备案|准入)的?(流程|程序|步骤|手续)|"
                             r"去哪(里|儿)?办|\bhow (do|can|should) (i|we) (apply|register|get)\b|\bprocedure|"
                             r"\bprocess for\b|\bsteps to\b", re.I)),
    ("location", re.compile(r"在哪|哪里|哪儿|什么地方|什么位置|哪个位置|地点|\bwhere\b", re.I)),
    ("organisation", re.compile(r"谁|哪个部门|哪个单位|哪个机构|哪家单位|哪些部门|什么部门|什么机构|由哪|归哪|找哪|牵头单位|"
                                r"\b(who|which (department|agency|authority|body|office|bureau|ministry))\b", re.I)),
    ("list", re.compile(r"哪些|哪几|有什么|都有什么|列举|列出|清单|\b(which|what are|list|what measures|what tasks)\b", re.I)),
    ("yes-no", re.compile(r"能不能|可不可以|能否|是否|可以.{0,20}吗|能.{0,20}吗|有没有|是不是|允许.{0,20}吗|会不会|"
                          r"^(can|may|is|are|does|do|will|could|should|must)\b", re.I)),
]

#: Requests that are not questions about what a document says: writing, translating, jokes, small talk,
#: recommendations, weather, questions about the assistant itself. The gate refuses them unless the
#: corpus covers their words (a "写一份外资诊所申请指南" still reaches the clauses on clinics).
_OFF_TASK = re.compile(
    r"^(请|麻烦)?(你)?(帮我|帮忙|给我|替我)?(写|作|编|创作|翻译|画|讲)(一|个|几)?(首|篇|段|句|个|则|下)|讲个?笑话|说个?笑话|"
    r"你是谁|你叫什么|谁(开发|训练|做)的你|你是(谁|哪家|什么模型)|(开发|训练)了?你的?是谁|你是.{0,6}(开发|训练)的|"
    r"天气(怎么样|如何|好吗)|(推荐|介绍)(一|几)?(家|个|些)?.{0,8}(餐厅|饭店|酒店|宾馆|景点|美食|好玩)|好玩的地方|去哪(里|儿)?玩|"
    r"^(你好|您好|嗨|哈喽|谢谢|多谢|再见)[!！。.~～]*$|"
    r"^\s*(please\s+)?(write|compose|draw|translate|paint)\b|\btell me a (joke|story)\b|\bwho (made|built|created|developed|trained) you\b|"
    r"\bwho are you\b|\bweather\b|\brecommend (a|an|some|me)\b.{0,30}\b(restaurant|hotel|bar|cafe|place to)|"
    r"^(hi|hello|hey|thanks|thank you|bye)[!. ]*$", re.IGNORECASE)


#: Questions about the assistant itself: off-task whatever words they share with the corpus (谁开发的).
_ABOUT_ASSISTANT = re.compile(
    r"你是谁|你叫什么|谁(开发|训练|做|制作)的你|你是(谁|哪家|什么模型)|(开发|训练)了?你的?是谁|你是.{0,6}(开发|训练|做|制作)的|"
    r"\bwho (made|built|created|developed|trained) you\b|\bwho are you\b|\bwhat (model|llm) are you\b", re.IGNORECASE)


def is_about_assistant(text: str) -> bool:
    """Is ``text`` a question about the assistant itself (who made it, what it is)?

    >>> is_about_assistant("你是哪家公司开发的？"), is_about_assistant("Who built you?"), is_about_assistant("谁开发的APP")
    (True, True, False)
    """
    return bool(_ABOUT_ASSISTANT.search(text.strip()))


def is_off_task(text: str) -> bool:
    """Is ``text`` a request the assistant does not serve (writing, jokes, small talk…)?

    >>> is_off_task("帮我写一首关于海的诗"), is_off_task("Tell me a joke"), is_off_task("外资能开诊所吗？")
    (True, True, False)
    """
    return bool(_OFF_TASK.search(text.strip()))


_DOC_TITLE = re.compile(r"《([^《》]{2,60})》")
# A law-like name: a run of characters that are not question or function words, ending in 法/条例/…; a bare
# 规定/办法/决定 ("分别适用哪些规定") names no document, nor do 说法/做法/合法….
_LAW_NAME = re.compile(r"([^\s，。？?！!、；;：:,.;:的了吗呢么哪什怎是在与及或对给时把被就都还又也这那些没能会要让]{2,16}?"
                       r"(?<![说做看想合违依方办用立执无非写算守宪])(?:法|条例|管理规定|暂行规定|管理办法|暂行办法|实施细则))"
                       r"(?=第|规定|里|中|的|有|对|怎么|吗|呢|？|\?|，|。|\s|$|要求|说|讲|明确)")
_EN_LAW = re.compile(r"\b((?:[A-Z][a-z]+(?:-[A-Z][a-z]+)? ){1,6}(?:Law|Regulations?|Measures|Rules|Provisions))\b")
_WENHAO = re.compile(r"(?:(?![的年和与及在了是对按据照即])[\u4e00-\u9fff]){1,6}[〔\[［(（]\s*(\d{4})\s*[〕\]］)）]\s*(\d+)\s*号")
_SHORT_WENHAO = re.compile(r"(?<![\d〕\]）)])(\d{1,4})\s*号(?:文|文件|通知)")
_ARTICLE = re.compile(r"第\s*([零〇一二三四五六七八九十百两\d]+)\s*条")
_EN_ARTICLE = re.compile(r"\barticle\s+(\d+)\b", re.I)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)\s*(?:年|年度|年底|年前|年末)?")
_LAW_WORDS = re.compile(r"(法|条例|规定|办法|细则)$")
# Generic words that end like a law name but name none ("办法" alone, "方法", "想法").
_NOT_LAWS = {"办法", "方法", "想法", "做法", "说法", "看法", "用法", "合法", "违法", "依法", "规定", "决定", "有关规定",
             "相关规定", "国家规定", "具体规定", "什么规定", "哪些规定", "新规定", "这个规定", "那个规定", "管理办法"}


class Query(BaseModel):
    """A question analysed once: what it asks, in which language, about what."""

    text: str
    standalone: str
    core: str
    is_followup: bool = False
    context: str = ""
    lang: Literal["zh", "en"] = "zh"
    terms: list[str] = Field(default_factory=list)
    topic_terms: list[str] = Field(default_factory=list)
    places: list[str] = Field(default_factory=list)
    home: bool = False
    documents: list[str] = Field(default_factory=list)
    contents_of: list[str] = Field(default_factory=list)
    wenhao: list[str] = Field(default_factory=list)
    articles: list[int] = Field(default_factory=list)
    years: list[int] = Field(default_factory=list)
    kind: AnswerKind = "fact"
    #: Every kind the question's parts ask for (``kind`` first); each needs evidence that states it.
    kinds: list[AnswerKind] = Field(default_factory=list)
    off_task: bool = False
    #: A question about the assistant itself (refused politely whatever words it shares with the corpus).
    about_assistant: bool = False

    @property
    def foreign_places(self) -> list[str]:
        gaz = Gazetteer.load()
        return [p for p in self.places if not gaz.is_home(p)]


@functools.cache
def _t2s() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """繁體 → 简体 (OpenCC's tables, pure Python); other text is unchanged.

    >>> to_simplified("請問市服開辦的電子郵件地址是什麼？")
    '请问市服开办的电子邮件地址是什么？'
    """
    return str(_t2s().convert(text)) if re.search(r"[\u3400-\u9fff]", text) else text


def answer_kind(text: str) -> AnswerKind:
    """The kind of answer a question asks for.

    >>> answer_kind("市服开办的电话是多少？"), answer_kind("到2028年服务业增加值要达到多少？")
    ('contact', 'amount')
    >>> answer_kind("Can foreign doctors open a clinic?"), answer_kind("哪些任务涉及数据跨境？")
    ('yes-no', 'list')
    """
    for kind, pattern in _KINDS:
        if pattern.search(text):
            return kind
    return "fact"


_PARTS = re.compile(r"[^？?；;]+[？?；;]?")


def answer_kinds(text: str) -> list[AnswerKind]:
    """The kinds asked by each part of a question with several ("要交什么材料？啥时候截止？").

    >>> answer_kinds("QFLP试点申报要交什么材料？啥时候截止？"), answer_kinds("外资能开诊所吗？")
    (['materials', 'deadline'], ['yes-no'])
    """
    kinds = [answer_kind(part) for part in _PARTS.findall(text) if part.strip(" ？?；;")]
    return list(dict.fromkeys(kinds)) or [answer_kind(text)]


def article_numbers(text: str) -> list[int]:
    """Article numbers named in ``text``, whether written 第40条, 第四十条 or Article 40.

    >>> article_numbers("数据安全法第三十一条和第40条"), article_numbers("Article 38 of the PIPL")
    ([31, 40], [38])
    """
    import cn2an

    out: list[int] = []
    for m in _ARTICLE.finditer(text):
        raw = m.group(1)
        try:
            out.append(int(raw) if raw.isdigit() else int(cn2an.cn2an(raw.replace("两", "二"), "smart")))
        except (ValueError, KeyError):
            continue
    out.extend(int(m.group(1)) for m in _EN_ARTICLE.finditer(text))
    return list(dict.fromkeys(out))


#: A list-like instrument (清单, 目录, 标准合同…) whose items the question asks for.
_LISTED = re.compile(r"([\u4e00-\u9fffA-Za-z0-9]{2,24}?(?:清单|目录|名录|标准合同|指导原则|指引|细则))"
                     r"(?:里|中|上|内)?面?[，,]?[^。？?，,]{0,6}?(?:都|具体|一共|到底|总共)?"
                     r"(?:有|列了?|列明|规定了?|包括|包含|写了?|涉及|限制了?)"
                     r"[^。？?]{0,12}?(?:哪些|哪几|什么|多少|几)")


def contents_asked(text: str) -> list[str]:
    """List-like instruments whose *contents* the question asks for (a law may cite a list it does not hold).

    >>> contents_asked("外国人在中国境内工作指导目录里都有哪些岗位？"), contents_asked("负面清单管理是什么意思？")
    (['外国人在中国境内工作指导目录'], [])
    >>> contents_asked("鼓励外商投资产业目录里，福建有哪些产业？"), contents_asked("方案里关于负面清单有哪些举措？")
    (['鼓励外商投资产业目录'], [])
    """
    out = []
    for m in _LISTED.finditer(text):
        if re.search(r".(关于|对于|有关|针对|围绕)", m.group(1)):  # "方案里关于负面清单有哪些举措": a topic, not a list's items
            continue
        name = re.sub(r"^(请问|按照|根据|依照|依据|关于|现行的?|目前的?|那个?|这个?|那份|这份)+", "", m.group(1))
        if len(name) >= 4:
            out.append(name)
    return list(dict.fromkeys(out))


def named_documents(text: str) -> list[str]:
    """Document names in ``text``: 《…》 titles, law-like names (…法, …条例), English law names.

    >>> named_documents("《反垄断法》对外资有什么要求？"), named_documents("公司法里怎么规定的")
    (['反垄断法'], ['公司法'])
    """
    found = [m.group(1).strip() for m in _DOC_TITLE.finditer(text)]
    stripped = _DOC_TITLE.sub(" ", text)
    for m in _LAW_NAME.finditer(stripped):
        name = re.sub(r"^(请问|按照|根据|依照|依据|关于|按|据|在|那|和)+", "", m.group(1))
        name = name.replace("中华人民共和国", "")
        for part in re.split(r"[和与及]", name):
            if part not in _NOT_LAWS and len(part) >= 3 and _LAW_WORDS.search(part):
                found.append(part)
    found.extend(m.group(1) for m in _EN_LAW.finditer(stripped))
    return list(dict.fromkeys(found))


class QueryAnalyzer:
    """Make a :class:`Query` from a question and its history (condensing follow-ups).

    Args:
        condenser: turns follow-ups into standalone questions.
        gazetteer: the place table.
    """

    def __init__(self, condenser: Condenser | None = None, gazetteer: Gazetteer | None = None) -> None:
        self.condenser = condenser or Condenser()
        self.gazetteer = gazetteer or Gazetteer.load()

    def _is_place(self, term: str) -> bool:
        """Place names are slots (checked against the evidence on their own), not topic words."""
        return term in HOME_ALIASES or term in self.gazetteer.places or term in NATIONAL

    def run(self, question: str, history: History | None = None) -> Query:
        if not question or not question.strip():
            raise ValueError("question is empty")
        simplified = to_simplified(question.strip())
        turns = [(to_simplified(q), a) for q, a in history or []]
        return self._analyse(question.strip(), self.condenser.run(simplified, turns))

    def _analyse(self, question: str, condensed: Condensed) -> Query:
        text = unicodedata.normalize("NFKC", condensed.standalone)
        core = unicodedata.normalize("NFKC", condensed.core)
        lang: Literal["zh", "en"] = "en" if detect_lang(question) == "en" else "zh"
        if lang == "en":
            acronyms = re.findall(r"\b[A-Z][A-Z0-9]{1,9}\b", condensed.core)  # CPMS, QFLP, DEPA
            terms = [*expand_query(condensed.core).lower().split(), *(a.lower() for a in acronyms)]
        else:
            terms = content_terms(condensed.core)
        terms = list(dict.fromkeys(terms))
        places = self.gazetteer.find(text)
        lowered = text.lower()
        home = any(a in lowered for a in HOME_ALIASES) or HOME_CITY in places
        if home and HOME_CITY not in places:
            places.append(HOME_CITY)
        # The follow-up's own words decide the kind ("那2026年呢？" keeps the previous question's kind).
        kind = answer_kind(core)
        if kind in ("fact", "yes-no") and condensed.is_followup:
            kind = answer_kind(text)
        years = [int(y) for y in _YEAR.findall(core)] or ([int(y) for y in _YEAR.findall(text)])
        wenhao = [m.group(0) for m in _WENHAO.finditer(text)]
        wenhao += [f"{m.group(1)}号文" for m in _SHORT_WENHAO.finditer(text)]
        documents = [d for d in named_documents(_WENHAO.sub(" ", text)) if d not in wenhao]
        return Query(text=question, standalone=condensed.standalone, core=condensed.core,
                     is_followup=condensed.is_followup, context=condensed.context, lang=lang, terms=terms,
                     topic_terms=[t for t in terms if t not in META_WORDS and not self._is_place(t)],
                     places=places, home=home,
                     documents=documents, contents_of=[n for n in contents_asked(text) if n not in documents],
                     wenhao=wenhao, articles=article_numbers(text),
                     years=list(dict.fromkeys(years)), kind=kind,
                     kinds=list(dict.fromkeys([kind, *(answer_kinds(core) if not condensed.is_followup else [])])),
                     off_task=not condensed.is_followup and is_off_task(text),
                     about_assistant=not condensed.is_followup and is_about_assistant(text))
