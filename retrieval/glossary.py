"""An English → Chinese glossary of the corpus's domain words, for the lexical side of English queries.

Chinese BM25 scores every clause 0 for an English question; translating the question's domain
words lets the lexical list and the coverage score take part. Entries are written from the
corpus vocabulary (policy, trade, data, telecom, medical, immigration, legal), longest match first.

>>> expand_query("Can foreign doctors open a clinic?")
'外籍 医生 诊所'
"""

from __future__ import annotations

import re

GLOSSARY: dict[str, str] = {
    # actors and places
    "foreign doctor": "外籍 医生", "foreign doctors": "外籍 医生", "doctor": "医生", "doctors": "医生",
    "physician": "医生", "nurse": "护理", "nurses": "护理", "nursing": "护理", "foreigner": "外国人",
    "foreigners": "外国人", "foreign national": "外国人", "foreign nationals": "外国人", "expat": "外籍",
    "foreign talent": "外籍人才", "talent": "人才", "talents": "人才", "scientist": "科学家", "scientists": "科学家",
    "overseas chinese": "侨胞 侨资", "hong kong": "香港", "macao": "澳门", "macau": "澳门", "taiwan": "台湾",
    "indonesia": "印尼", "asean": "东盟", "fuzhou": "福州", "fujian": "福建", "hainan": "海南",
    "foreign investor": "外国投资者", "foreign investors": "外国投资者", "foreign-invested": "外商投资",
    "foreign invested": "外商投资", "foreign investment": "外商投资 外资", "foreign capital": "外资",
    "foreign": "外籍 境外 外国", "overseas": "境外", "enterprise": "企业", "enterprises": "企业", "company": "企业",
    "companies": "企业", "firm": "企业", "operator": "经营者", "operators": "经营者", "state-owned": "国有",
    "government": "政府", "department": "部门", "departments": "部门", "agency": "行政机关", "office": "办公室",
    "commerce bureau": "商务局", "task force": "专班", "working group": "工作组", "state council": "国务院",
    # health
    "clinic": "诊所", "clinics": "诊所", "hospital": "医院", "hospitals": "医院 医疗机构", "medical": "医疗",
    "healthcare": "医疗 康养", "elderly care": "养老", "elderly": "养老", "non-profit": "非营利性",
    "cell therapy": "细胞治疗", "gene": "基因", "drug": "药品 药械", "drugs": "药品 药械", "medicine": "药品",
    "medical device": "药械", "medical devices": "药械", "cosmetics": "化妆品", "real-world data": "真实世界数据",
    "short-term practice": "短期执业", "practice": "执业", "practise": "执业",
    # data and telecom
    "data": "数据", "cross-border": "跨境", "cross border": "跨境", "export": "出境 出口", "outbound": "出境",
    "personal information": "个人信息", "sensitive personal information": "敏感个人信息", "privacy": "个人信息",
    "consent": "同意", "important data": "重要数据", "core data": "核心数据", "security": "安全",
    "security assessment": "安全评估", "assessment": "评估", "network": "网络", "cybersecurity": "网络安全",
    "log": "日志", "logs": "日志", "platform": "平台", "telecom": "电信", "telecommunications": "电信",
    "value-added": "增值电信业务", "value added": "增值", "basic telecom": "基础电信业务", "license": "许可证",
    "licence": "许可证", "permit": "许可", "computing power": "算力", "blockchain": "区块链", "5g": "5G",
    "digital trade": "数字贸易", "digital": "数字", "identity": "身份", "digital identity": "数字身份",
    "electronic signature": "电子签名", "e-signature": "电子签名", "signature": "签名", "electronic": "电子",
    "commercial cryptography": "商用密码", "encryption": "密码",
    # finance and trade
    "equity": "股权 出资比例", "shareholding": "股权 出资比例", "share": "比例", "stake": "出资比例",
    "registered capital": "注册资本", "capital": "资本 资金", "investment": "投资", "invest": "投资",
    "bank": "银行", "banks": "银行", "insurance": "保险", "reinsurance": "再保险", "fund": "基金 资金",
    "limited partner": "有限合伙人", "qflp": "QFLP", "digital rmb": "数字人民币", "digital yuan": "数字人民币",
    "e-cny": "数字人民币", "settlement": "结算", "factoring": "保理", "leasing": "租赁", "lease": "租赁",
    "aircraft": "飞机", "aviation": "航空", "maintenance": "维修", "integrated circuit": "集成电路",
    "green finance": "绿色金融", "trade": "贸易", "foreign trade": "对外贸易", "services trade": "服务贸易",
    "trade in services": "服务贸易", "negative list": "负面清单", "e-commerce": "电商 电子商务",
    "tax refund": "退税", "departure tax refund": "离境退税", "tax": "税", "tariff": "关税", "customs": "通关 海关",
    "clearance": "通关", "port": "口岸 港口", "bonded": "保税", "free trade zone": "自贸区",
    "free trade port": "自由贸易港", "pilot free trade zone": "自贸区", "consumption": "消费", "brand": "品牌",
    "tourism": "文旅 旅游", "tourist": "游客", "tourists": "游客", "exhibition": "会展", "performance": "演出",
    # logistics and industry
    "logistics": "物流", "rail": "铁路", "railway": "铁路", "shipping": "船", "container": "集装箱",
    "multimodal": "联运", "bill of lading": "提单", "fuel": "燃料油", "bunker": "船供燃料油", "vehicle": "汽车",
    "vehicles": "汽车", "car": "汽车", "new energy": "新能源", "battery": "锂电池", "carbon": "碳", "low-carbon": "低碳",
    "zero-carbon": "零碳", "carbon footprint": "碳足迹", "green": "绿色", "standard": "标准", "standards": "标准",
    "certification": "认证", "testing": "检测", "intellectual property": "知识产权", "ip": "知识产权",
    "training": "培训", "professional title": "职称", "qualification": "资格", "qualifications": "资格",
    "professional qualification": "职业资格", "recycling": "再生资源", "manufacturing": "制造",
    # immigration
    "visa": "签证", "visas": "签证", "visa-free": "免签", "transit": "过境", "residence": "居留",
    "permanent residence": "永久居留", "residence permit": "居留证件", "work permit": "工作许可",
    "employment": "工作 聘用", "employ": "聘用", "hire": "聘用", "exit": "出境", "entry": "入境",
    "border": "边检", "stay": "停留",
    # legal and administration
    "law": "法", "regulation": "条例", "regulations": "条例", "provisions": "规定", "article": "条",
    "legal": "法律", "lawyer": "律师 法律顾问", "legal adviser": "法律顾问", "dispute": "纠纷", "disputes": "纠纷",
    "mediation": "调解", "labor": "劳动", "labour": "劳动", "inspection": "检查 监察", "supervision": "监管",
    "penalty": "罚款 处罚", "penalties": "罚款 处罚", "fine": "罚款", "fined": "罚款", "liability": "法律责任",
    "complaint": "投诉", "disclosure": "公开", "information disclosure": "信息公开", "request": "申请",
    "application": "申请", "apply": "申请", "deadline": "期限 日内", "days": "日", "working days": "工作日",
    "approval": "审批 批准", "review": "审查", "examination": "审查", "record": "备案", "filing": "备案",
    "technology transfer": "技术转让", "national treatment": "国民待遇", "pre-establishment": "准入前",
    "remit": "汇出", "remittance": "汇出", "profits": "利润", "salary": "工资", "income": "收入",
    "expropriation": "征收", "compensation": "补偿",
    # the plan itself
    "target": "目标", "targets": "目标", "goal": "目标", "goals": "目标", "2026": "2026", "2027": "2027",
    "2028": "2028", "service industry": "服务业", "service sector": "服务业", "services": "服务",
    "value-added of": "增加值", "growth": "增长", "pilot": "试点", "pilots": "试点", "task": "任务",
    "tasks": "任务", "measures": "举措", "risk": "风险", "risks": "风险", "publicity": "宣传",
    "assessment of performance": "绩效考核", "performance appraisal": "绩效考核", "funding": "经费",
    "subsidy": "补贴", "rules": "规则", "cptpp": "CPTPP", "depa": "DEPA", "wto": "世贸组织",
}

_KEYS = sorted(GLOSSARY, key=len, reverse=True)
_PATTERN = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(k) for k in _KEYS) + r")(?![a-z0-9])")


def expand_query(text: str) -> str:
    """The Chinese glossary terms of an English text's domain words (longest match first), space-joined."""
    return " ".join(dict.fromkeys(term for unit in glossary_units(text) for term in unit))


def glossary_units(text: str) -> list[list[str]]:
    """The Chinese terms of each glossary entry an English text uses (longest match first), one list per entry.

    >>> glossary_units("Can foreign doctors open a clinic?")
    [['外籍', '医生'], ['诊所']]
    """
    return [GLOSSARY[m.group(1)].split() for m in _PATTERN.finditer(text.lower())]
