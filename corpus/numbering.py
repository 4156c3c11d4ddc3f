"""Chinese numeral helpers used by the parser (第三十一条 ↔ 31, 2 ↔ 二)."""

from __future__ import annotations

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_DIGIT_CHARS = "零一二三四五六七八九"


def cn_to_int(text: str) -> int:
    """Convert a Chinese numeral (up to 9999) to an int.

    >>> cn_to_int("三十一"), cn_to_int("十"), cn_to_int("一百零五")
    (31, 10, 105)
    """
    if text.isdigit():
        return int(text)
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch in _UNITS:
            total += (current or 1) * _UNITS[ch]
            current = 0
        else:
            raise ValueError(f"not a Chinese numeral: {text!r}")
    return total + current


def int_to_cn(n: int) -> str:
    """Convert 1..9999 to a Chinese numeral as used in document numbering.

    >>> int_to_cn(2), int_to_cn(14), int_to_cn(31), int_to_cn(105)
    ('二', '十四', '三十一', '一百零五')
    """
    if n <= 0:
        raise ValueError("only positive numbers are used in numbering")
    parts: list[str] = []
    units = [(1000, "千"), (100, "百"), (10, "十")]
    rest = n
    zero_pending = False
    for value, unit in units:
        digit, rest = divmod(rest, value)
        if digit:
            if zero_pending:
                parts.append("零")
                zero_pending = False
            if not (value == 10 and digit == 1 and not parts):
                parts.append(_DIGIT_CHARS[digit])
            parts.append(unit)
        elif parts:
            zero_pending = True
    if rest:
        if zero_pending:
            parts.append("零")
        parts.append(_DIGIT_CHARS[rest])
    return "".join(parts)
