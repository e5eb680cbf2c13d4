"""Cell values as a spreadsheet shows them, from the value and its number format.

openpyxl gives raw values (4100000.5) and the format string (`#,##0.0,, "M"`); no
maintained library renders Excel formats, so the common cases are rendered here: sections
for negatives and zero, literals and currency symbols, thousands separators, scaling
commas, fixed and optional decimals, percent and scientific notation. Anything else
falls back to the general format. Dates arrive as `datetime` (openpyxl converts them).
"""

from __future__ import annotations

import datetime as dt
import re

_PLACEHOLDERS = frozenset("0#?")
_CORE = frozenset("0#?.,")
_BRACKET = re.compile(r"\[([^\]]*)\]")


def _sections(fmt: str) -> list[str]:
    sections, current, quoted, i = [], [], False, 0
    while i < len(fmt):
        char = fmt[i]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and i + 1 < len(fmt):
            current.append(fmt[i : i + 2])
            i += 2
            continue
        elif char == ";" and not quoted:
            sections.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    sections.append("".join(current))
    return sections


def _tokens(section: str) -> list[tuple[str, str]]:
    """(kind, text): `core` placeholder characters, `lit` literal text, `pct`, `exp`."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(section):
        char = section[i]
        if char == '"':
            end = section.find('"', i + 1)
            end = len(section) if end < 0 else end
            tokens.append(("lit", section[i + 1 : end]))
            i = end + 1
        elif char == "\\" and i + 1 < len(section):
            tokens.append(("lit", section[i + 1]))
            i += 2
        elif char == "_" and i + 1 < len(section):
            tokens.append(("lit", " "))
            i += 2
        elif char == "*" and i + 1 < len(section):
            i += 2
        elif char == "[":
            match = _BRACKET.match(section, i)
            if match is None:
                break
            inner = match.group(1)
            if inner.startswith("$"):  # [$€-407]: a currency symbol and a locale
                tokens.append(("lit", inner[1:].split("-")[0]))
            i = match.end()
        elif char in "eE" and i + 1 < len(section) and section[i + 1] in "+-":
            j = i + 2
            while j < len(section) and section[j] in _PLACEHOLDERS:
                j += 1
            tokens.append(("exp", section[i:j]))
            i = j
        elif char == "%":
            tokens.append(("pct", "%"))
            i += 1
        elif char in _CORE:
            tokens.append(("core", char))
            i += 1
        else:
            tokens.append(("lit", char))
            i += 1
    return tokens


def general(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.10g}"


def _number(value: float, core: str, exponent: str | None, percent: bool) -> str:
    if percent:
        value *= 100
    stripped = core.rstrip(",")
    scale = len(core) - len(stripped)  # trailing commas divide by a thousand each
    value /= 1000**scale
    integer, _, fraction = stripped.partition(".")
    grouping = "," in integer.strip(",")
    max_decimals = sum(1 for c in fraction if c in _PLACEHOLDERS)
    min_decimals = fraction.count("0")
    if exponent is not None:
        return f"{value:.{max_decimals}E}"
    text = f"{value:{',' if grouping else ''}.{max_decimals}f}"
    if max_decimals > min_decimals:
        head, _, tail = text.partition(".")
        tail = tail[:min_decimals] + tail[min_decimals:].rstrip("0")
        text = f"{head}.{tail}" if tail else head
    min_integer = integer.count("0")
    if not grouping and min_integer > 1:  # "0000" shows 7 as 0007
        head, dot, tail = text.partition(".")
        text = head.zfill(min_integer) + dot + tail
    if integer.strip(",#?") == "" and text.startswith("0") and (fraction or text == "0"):
        # "#.00" shows .5, not 0.50; "#" shows nothing for 0.
        text = text[1:]
    return text


def format_number(value: float, fmt: str | None) -> str:
    """`value` rendered with the Excel number format `fmt`."""
    if not fmt or fmt.strip().lower() in {"general", "@"}:
        return general(value)
    try:
        sections = _sections(fmt)
        section, sign = sections[0], "-" if value < 0 else ""
        if value < 0 and len(sections) > 1 and sections[1].strip():
            section, sign = sections[1], ""
        elif value == 0 and len(sections) > 2 and sections[2].strip():
            section = sections[2]
        tokens = _tokens(section)
        if section.strip().lower() == "general" or not any(k == "core" for k, _ in tokens):
            literal = "".join(t for k, t in tokens if k in ("lit", "pct"))
            return literal if "general" not in section.lower() else general(value)
        first = next(i for i, (k, _) in enumerate(tokens) if k == "core")
        last = first
        while last + 1 < len(tokens) and tokens[last + 1][0] in ("core", "exp"):
            last += 1
        core = "".join(t for k, t in tokens[first : last + 1] if k == "core")
        exponent = next((t for k, t in tokens[first : last + 1] if k == "exp"), None)
        percent = any(k == "pct" for k, _ in tokens)
        prefix = "".join(t for k, t in tokens[:first] if k in ("lit", "pct"))
        suffix = "".join(t for k, t in tokens[last + 1 :] if k in ("lit", "pct"))
        return f"{sign}{prefix}{_number(abs(value), core, exponent, percent)}{suffix}".strip()
    except (ValueError, IndexError, StopIteration, OverflowError):
        return general(value)


def format_cell(value: object, fmt: str | None) -> str:
    """Any openpyxl cell value as text the way the sheet shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return format_number(value, fmt)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
