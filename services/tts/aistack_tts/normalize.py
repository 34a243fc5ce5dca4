"""Text normalization for speech: numbers, currency, dates, percentages and abbreviations spelled out
for pt-BR and English, then split into sentences.

Engines read digits and abbreviations badly (espeak-ng says "R cifrão", XTTS skips digits), and a call
center's text is full of them ("R$ 1.234,56 em 25/11/2026"), so the service spells them out itself,
the same way for every engine.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

Language = str  # "pt" or "en"

# --- Portuguese (pt-BR) -------------------------------------------------------------------------

_PT_UNITS_M = [
    "zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove",
    "dez", "onze", "doze", "treze", "catorze", "quinze", "dezesseis", "dezessete", "dezoito", "dezenove",
]  # fmt: skip
_PT_TENS = ["", "", "vinte", "trinta", "quarenta", "cinquenta", "sessenta", "setenta", "oitenta", "noventa"]
_PT_HUNDREDS_M = [
    "", "cento", "duzentos", "trezentos", "quatrocentos", "quinhentos",
    "seiscentos", "setecentos", "oitocentos", "novecentos",
]  # fmt: skip
_PT_SCALES = [("", ""), ("mil", "mil"), ("milhão", "milhões"), ("bilhão", "bilhões"), ("trilhão", "trilhões")]
_PT_MONTHS = [
    "janeiro", "fevereiro", "março", "abril", "maio", "junho",
    "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
]  # fmt: skip


def _pt_feminine(words: str) -> str:
    words = re.sub(r"\bum\b", "uma", words)
    words = re.sub(r"\bdois\b", "duas", words)
    return re.sub(r"\b(\w+)entos\b", r"\1entas", words)


def _pt_below_1000(n: int) -> str:
    if n == 100:
        return "cem"
    parts = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        parts.append(_PT_HUNDREDS_M[hundreds])
    if rest:
        if rest < 20:
            parts.append(_PT_UNITS_M[rest])
        else:
            tens, units = divmod(rest, 10)
            parts.append(_PT_TENS[tens] + (f" e {_PT_UNITS_M[units]}" if units else ""))
    return " e ".join(parts)


def pt_cardinal(n: int, *, feminine: bool = False) -> str:
    """`1234` -> "mil duzentos e trinta e quatro"."""
    if n < 0:
        return "menos " + pt_cardinal(-n, feminine=feminine)
    if n < 1000:
        words = _pt_below_1000(n) if n else "zero"
        return _pt_feminine(words) if feminine else words
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    if len(groups) > len(_PT_SCALES):
        raise ValueError("number too large to spell out")
    spoken: list[tuple[int, str]] = []
    for scale, group in reversed(list(enumerate(groups))):
        if not group:
            continue
        singular, plural = _PT_SCALES[scale]
        if scale == 0:
            words = _pt_below_1000(group)
        elif scale == 1:
            words = "mil" if group == 1 else f"{_pt_below_1000(group)} mil"
        else:
            words = f"{_pt_below_1000(group)} {singular if group == 1 else plural}"
        if feminine and scale < 2:
            words = _pt_feminine(words)
        spoken.append((group, words))
    text = spoken[0][1]
    for index, (group, words) in enumerate(spoken[1:], start=1):
        # "mil e quinhentos", "mil e vinte", but "mil duzentos e trinta": the last group takes "e"
        # when it is below one hundred or a round hundred.
        last = index == len(spoken) - 1
        joiner = " e " if last and (group < 100 or group % 100 == 0) else " "
        text += joiner + words
    return text


def _pt_ordinal_day(day: int) -> str:
    return "primeiro" if day == 1 else pt_cardinal(day)


def _pt_money(integer: int, cents: int, singular: str, plural: str) -> str:
    parts = []
    if integer or not cents:
        unit = singular if integer == 1 else plural
        # "um milhão de reais", "dois mil reais"
        of = " de" if integer >= 1_000_000 and integer % 1_000_000 == 0 else ""
        parts.append(f"{pt_cardinal(integer)}{of} {unit}")
    if cents:
        parts.append(f"{pt_cardinal(cents)} {'centavo' if cents == 1 else 'centavos'}")
    return " e ".join(parts)


# --- English --------------------------------------------------------------------------------------

_EN_UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_EN_SCALES = ["", "thousand", "million", "billion", "trillion"]
_EN_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_EN_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def _en_below_1000(n: int) -> str:
    parts = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        parts.append(f"{_EN_UNITS[hundreds]} hundred")
    if rest:
        if rest < 20:
            parts.append(_EN_UNITS[rest])
        else:
            tens, units = divmod(rest, 10)
            parts.append(_EN_TENS[tens] + (f"-{_EN_UNITS[units]}" if units else ""))
    return " ".join(parts)


def en_cardinal(n: int) -> str:
    """`1234` -> "one thousand two hundred thirty-four"."""
    if n < 0:
        return "minus " + en_cardinal(-n)
    if n == 0:
        return "zero"
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    if len(groups) > len(_EN_SCALES):
        raise ValueError("number too large to spell out")
    words = [
        f"{_en_below_1000(group)} {_EN_SCALES[scale]}".strip()
        for scale, group in reversed(list(enumerate(groups)))
        if group
    ]
    return " ".join(words)


def en_ordinal(n: int) -> str:
    """`25` -> "twenty-fifth"."""
    words = en_cardinal(n)
    head, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
    if last in _EN_ORDINAL_WORDS:
        last = _EN_ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def en_year(year: int) -> str:
    """Years the way they are said: 1999 "nineteen ninety-nine", 2026 "twenty twenty-six"."""
    if 2000 <= year <= 2009 or year % 1000 == 0 or not 1100 <= year <= 2099:
        return en_cardinal(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{en_cardinal(high)} hundred"
    return f"{en_cardinal(high)} {'oh-' + en_cardinal(low) if low < 10 else en_cardinal(low)}"


def _en_money(integer: int, cents: int, singular: str, plural: str) -> str:
    parts = []
    if integer or not cents:
        parts.append(f"{en_cardinal(integer)} {singular if integer == 1 else plural}")
    if cents:
        parts.append(f"{en_cardinal(cents)} {'cent' if cents == 1 else 'cents'}")
    return " and ".join(parts)


# --- Shared rules ---------------------------------------------------------------------------------

# Abbreviations that end in a period: expanded before sentence splitting so "Sr. Silva" stays one
# sentence. Case-sensitive on purpose: "Dr." is a title, "dr." rarely is.
_ABBREVIATIONS: dict[Language, dict[str, str]] = {
    "pt": {
        "Sr.": "senhor", "Sra.": "senhora", "Srta.": "senhorita", "Srs.": "senhores",
        "Dr.": "doutor", "Dra.": "doutora", "Drs.": "doutores", "Prof.": "professor",
        "Profa.": "professora", "Av.": "avenida", "Tel.": "telefone", "tel.": "telefone",
        "Ltda.": "limitada", "etc.": "etcétera", "p.ex.": "por exemplo", "Obs.": "observação",
        "obs.": "observação", "pág.": "página", "Exmo.": "excelentíssimo", "Exma.": "excelentíssima",
        "V.Sa.": "vossa senhoria", "aprox.": "aproximadamente",
    },
    "en": {
        "Mr.": "mister", "Mrs.": "missus", "Ms.": "miss", "Dr.": "doctor", "Prof.": "professor",
        "St.": "saint", "Ave.": "avenue", "etc.": "et cetera", "vs.": "versus", "Inc.": "incorporated",
        "Ltd.": "limited", "Jr.": "junior", "Sr.": "senior", "approx.": "approximately",
        "e.g.": "for example", "i.e.": "that is",
    },
}  # fmt: skip
# Abbreviations only when a number follows ("nº 5", "No. 5").
_NUMBER_PREFIXES: dict[Language, tuple[str, str]] = {
    # Not a bare "no": that is the everyday contraction "em + o".
    "pt": (r"(?:[nN]\.?[º°]|No\.)", "número"),
    "en": (r"(?:No\.|no\.|#)", "number"),
}

_CURRENCIES: dict[Language, list[tuple[str, str, str]]] = {
    # symbol regex, singular, plural
    "pt": [(r"R\$", "real", "reais"), (r"US\$|U\$", "dólar", "dólares"), (r"€", "euro", "euros")],
    "en": [(r"US\$|\$", "dollar", "dollars"), (r"R\$", "real", "reais"), (r"€", "euro", "euros")],
}

# pt writes 1.234,56; en writes 1,234.56.
_PT_NUMBER = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
_EN_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def _parse_number(text: str, language: Language) -> tuple[int, str]:
    """`"1.234,56"` (pt) -> (1234, "56"): the integer and the digits after the decimal mark."""
    thousands, decimal = (".", ",") if language == "pt" else (",", ".")
    whole, _, fraction = text.replace(thousands, "").partition(decimal)
    return int(whole), fraction


def _cardinal(language: Language) -> Callable[[int], str]:
    return (lambda n: pt_cardinal(n)) if language == "pt" else en_cardinal


def _spell_number(text: str, language: Language) -> str:
    integer, fraction = _parse_number(text, language)
    cardinal = _cardinal(language)
    words = cardinal(integer)
    if fraction:
        point = "vírgula" if language == "pt" else "point"
        # Up to two decimals read as a number ("três vírgula cinquenta"), longer ones digit by digit.
        if len(fraction) <= 2 and not fraction.startswith("0"):
            words += f" {point} {cardinal(int(fraction))}"
        else:
            words += f" {point} " + " ".join(cardinal(int(d)) for d in fraction)
    return words


def _money(match: re.Match[str], *, language: Language, singular: str, plural: str) -> str:
    integer, fraction = _parse_number(match.group("amount"), language)
    cents = int((fraction + "00")[:2]) if fraction else 0
    if language == "pt":
        return _pt_money(integer, cents, singular, plural)
    return _en_money(integer, cents, singular, plural)


def _date(match: re.Match[str], language: Language) -> str:
    first, second, year_text = int(match["a"]), int(match["b"]), match["y"]
    if language == "pt":
        day, month = first, second
    else:
        # US order unless the first field cannot be a month (25/11/2026).
        month, day = (second, first) if first > 12 else (first, second)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    year = None
    if year_text:
        year = int(year_text)
        if len(year_text) == 2:
            year += 2000
    if language == "pt":
        spoken = f"{_pt_ordinal_day(day)} de {_PT_MONTHS[month - 1]}"
        return spoken + (f" de {pt_cardinal(year)}" if year is not None else "")
    spoken = f"{_EN_MONTHS[month - 1]} {en_ordinal(day)}"
    return spoken + (f", {en_year(year)}" if year is not None else "")


def _time(hours: int, minutes: int, original: str, language: Language) -> str:
    if hours > 23 or minutes > 59:
        return original
    if language == "pt":
        spoken = f"{pt_cardinal(hours, feminine=True)} {'hora' if hours == 1 else 'horas'}"
        if minutes:
            spoken += f" e {pt_cardinal(minutes)} {'minuto' if minutes == 1 else 'minutos'}"
        return spoken
    if minutes == 0:
        return f"{en_cardinal(hours)} o'clock"
    return f"{en_cardinal(hours)} {'oh-' + en_cardinal(minutes) if minutes < 10 else en_cardinal(minutes)}"


def normalize(text: str, language: Language) -> str:
    """Spells out what an engine would misread. `language` is "pt" or "en"."""
    if language not in _ABBREVIATIONS:
        raise ValueError(f"unsupported language {language!r}")
    number = _PT_NUMBER if language == "pt" else _EN_NUMBER
    text = re.sub(r"\s+", " ", text).strip()

    for abbreviation, expansion in _ABBREVIATIONS[language].items():
        text = re.sub(rf"(?<![\w.]){re.escape(abbreviation)}(?!\w)", expansion, text)
    prefix, word = _NUMBER_PREFIXES[language]
    text = re.sub(rf"(?<!\w){prefix}\s*(?=\d)", word + " ", text)

    # Dates before plain numbers: 25/11/2026, 25/11/26, 25/11.
    text = re.sub(
        r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?\b",
        lambda m: _date(m, language),
        text,
    )
    # Times: 14h30, 14:30, 9h.
    text = re.sub(
        r"\b(?P<h>\d{1,2})(?:h(?P<m>\d{2})?|:(?P<m2>\d{2}))\b",
        lambda m: _time(int(m["h"]), int(m["m"] or m["m2"] or 0), m.group(0), language),
        text,
    )
    for symbol, singular, plural in _CURRENCIES[language]:
        text = re.sub(
            rf"(?:{symbol})\s?(?P<amount>{number})\b",
            functools.partial(_money, language=language, singular=singular, plural=plural),
            text,
        )
    percent = "por cento" if language == "pt" else "percent"
    text = re.sub(rf"(?P<n>{number})\s?%", lambda m: f"{_spell_number(m['n'], language)} {percent}", text)
    if language == "pt":
        # Ordinals: 1º, 2ª.
        text = re.sub(r"\b(\d+)\s?([ºª])", lambda m: _pt_ordinal(int(m[1]), m[2] == "ª"), text)
    else:
        text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: en_ordinal(int(m[1])), text)
    text = re.sub(rf"(?<![\w,.])(?P<n>{number})(?![\w])", lambda m: _spell_number(m["n"], language), text)
    return text


_PT_ORDINAL_UNITS = ["", "primeiro", "segundo", "terceiro", "quarto", "quinto", "sexto", "sétimo", "oitavo",
                     "nono"]  # fmt: skip
_PT_ORDINAL_TENS = ["", "décimo", "vigésimo", "trigésimo", "quadragésimo", "quinquagésimo", "sexagésimo",
                    "septuagésimo", "octogésimo", "nonagésimo"]  # fmt: skip


def _pt_ordinal(n: int, feminine: bool) -> str:
    if not 1 <= n <= 99:
        return pt_cardinal(n, feminine=feminine)
    tens, units = divmod(n, 10)
    words = " ".join(w for w in (_PT_ORDINAL_TENS[tens], _PT_ORDINAL_UNITS[units]) if w)
    return re.sub(r"o\b", "a", words) if feminine else words


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Splits normalized text at sentence ends; a sentence longer than `max_chars` is cut at the last
    comma, semicolon or space before the limit (XTTS refuses long inputs, and shorter pieces stream
    sooner)."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            window = sentence[: max_chars + 1]
            cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
            cut = cut + 1 if cut > max_chars // 3 else window.rfind(" ")
            if cut <= 0:
                cut = max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces
