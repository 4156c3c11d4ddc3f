"""Place names a question may name, and whether the corpus's own places cover them.

The table ``assistant/resources/places.tsv`` (name, canonical name, level, city) was made from
``pca.csv`` of the MIT-licensed ``addressparser`` package (3,718 provinces, cities and districts,
2021 codes) by ``python -m assistant.places PATH/TO/pca.csv``, plus the English names of
provincial-level divisions and large cities (written here). Short names drop the suffix
(``厦门市`` → ``厦门``) where that leaves two characters or more; districts keep their full name.

Usage::

    gazetteer = Gazetteer.load()
    gazetteer.find("厦门的外资诊所政策和福州一样吗？")   # ['厦门市', '福州市']
    gazetteer.is_home("福州市")                          # True: 福州 and its districts
"""

from __future__ import annotations

import csv
import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

RESOURCE = Path(__file__).resolve().parent / "resources" / "places.tsv"

#: The corpus's own city: names and aliases a question may use for it.
HOME_CITY = "福州市"
HOME_ALIASES = ("榕城", "榕", "本市", "我市", "全市", "市里", "fuzhou", "福州")
#: Names that stand for the whole country (the national laws cover them).
NATIONAL = ("中国", "全国", "国家", "境内", "我国", "中华人民共和国", "china", "prc", "nationwide")

_EN_NAMES = {
    "beijing": "北京市", "shanghai": "上海市", "tianjin": "天津市", "chongqing": "重庆市", "guangzhou": "广州市",
    "shenzhen": "深圳市", "xiamen": "厦门市", "hangzhou": "杭州市", "nanjing": "南京市", "suzhou": "苏州市",
    "wuhan": "武汉市", "chengdu": "成都市", "xi'an": "西安市", "xian": "西安市", "qingdao": "青岛市",
    "dalian": "大连市", "ningbo": "宁波市", "quanzhou": "泉州市", "zhangzhou": "漳州市", "putian": "莆田市",
    "hainan": "海南省", "guangdong": "广东省", "zhejiang": "浙江省", "jiangsu": "江苏省", "shandong": "山东省",
    "hong kong": "香港特别行政区", "macau": "澳门特别行政区", "macao": "澳门特别行政区", "taiwan": "台湾省",
    "fujian": "福建省", "fuzhou": "福州市", "haikou": "海口市", "sanya": "三亚市", "kunming": "昆明市",
    "changsha": "长沙市", "hefei": "合肥市", "zhengzhou": "郑州市", "shenyang": "沈阳市", "harbin": "哈尔滨市",
}


@dataclass(frozen=True)
class Place:
    name: str
    canonical: str
    level: str  # province | city | district
    city: str  # the city it lies in ("" for a province)


def build(pca_csv: Path, out: Path = RESOURCE) -> int:
    """Write the table from addressparser's ``pca.csv``; returns the number of rows."""
    rows: dict[str, Place] = {}

    def add(name: str, place: Place) -> None:
        if len(name) < 2:
            return
        old = rows.get(name)
        if old is None:
            rows[name] = place
        elif place.level == old.level == "district" and place.city not in old.city.split("|"):
            rows[name] = Place(name, name, "district", f"{old.city}|{place.city}")  # 鼓楼区: 福州, 南京…

    with pca_csv.open(encoding="utf-8") as fh:
        for rec in csv.reader(fh):
            _, prov, city, district = rec[:4]
            if prov and not city:
                continue
            if prov:
                p = Place(prov, prov, "province", "")
                add(prov, p)
                add(re.sub(r"(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)$", "", prov), p)
            if city and not district:
                c = Place(city, city, "city", city)
                add(city, c)
                add(re.sub(r"(市|地区|自治州|盟)$", "", city), c)
            if district and len(district) >= 3 and not district.endswith(("开发区", "示范区", "新区", "园区")):
                add(district, Place(district, district, "district", city))
    with out.open("w", encoding="utf-8") as fh:
        for name, p in sorted(rows.items()):
            fh.write(f"{name}\t{p.canonical}\t{p.level}\t{p.city}\n")
    return len(rows)


class Gazetteer:
    """Finds place names in a question (longest match first) and tells the corpus's own places."""

    def __init__(self, places: dict[str, Place]) -> None:
        self.places = places
        self._forms: dict[str, list[str]] = {}
        for n, p in places.items():
            self._forms.setdefault(p.canonical, []).append(n)
        names = sorted((n for n in places if len(n) >= 2), key=len, reverse=True)
        self._zh = re.compile("|".join(map(re.escape, names))) if names else None
        self._en = re.compile(r"\b(" + "|".join(map(re.escape, sorted(_EN_NAMES, key=len, reverse=True))) + r")\b",
                              re.IGNORECASE)

    @classmethod
    @functools.cache
    def load(cls) -> Gazetteer:
        places: dict[str, Place] = {}
        if RESOURCE.exists():
            for line in RESOURCE.read_text(encoding="utf-8").splitlines():
                name, canonical, level, city = (line.split("\t") + ["", "", "", ""])[:4]
                places[name] = Place(name, canonical, level, city)
        return cls(places)

    def find(self, text: str) -> list[str]:
        """Canonical names of the places ``text`` names, in order, without repeats."""
        found: list[str] = []
        if self._zh is not None:
            for m in self._zh.finditer(text):
                found.append(self.places[m.group(0)].canonical)
        for m in self._en.finditer(text):
            found.append(_EN_NAMES[m.group(1).lower()])
        return list(dict.fromkeys(found))

    def is_home(self, canonical: str) -> bool:
        """福州 itself, one of its districts and counties, or 福建 (the province it lies in)."""
        p = self.places.get(canonical)
        return canonical in (HOME_CITY, "福建省") or (p is not None and HOME_CITY in p.city.split("|"))

    def surface_forms(self, canonical: str) -> list[str]:
        """Every name in the table for ``canonical`` (厦门市 → 厦门市, 厦门), in the table's order."""
        return list(self._forms.get(canonical, ()))


if __name__ == "__main__":  # pragma: no cover - build step
    print(build(Path(sys.argv[1])), "rows written to", RESOURCE)
