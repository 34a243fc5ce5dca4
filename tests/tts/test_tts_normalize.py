"""Text normalization for pt-BR and English, and sentence splitting."""

from __future__ import annotations

import pytest
from aistack_tts.normalize import en_cardinal, en_ordinal, normalize, pt_cardinal, split_sentences


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"), (1, "um"), (16, "dezesseis"), (21, "vinte e um"), (100, "cem"), (101, "cento e um"),
        (999, "novecentos e noventa e nove"), (1000, "mil"), (1001, "mil e um"), (1100, "mil e cem"),
        (1234, "mil duzentos e trinta e quatro"), (2026, "dois mil e vinte e seis"),
        (21500, "vinte e um mil e quinhentos"), (1_000_000, "um milhão"),
        (2_500_000, "dois milhões e quinhentos mil"), (1_000_001, "um milhão e um"),
    ],
)  # fmt: skip
def test_portuguese_cardinals(number: int, words: str) -> None:
    assert pt_cardinal(number) == words


def test_portuguese_feminine() -> None:
    assert pt_cardinal(2, feminine=True) == "duas"
    assert pt_cardinal(201, feminine=True) == "duzentas e uma"


@pytest.mark.parametrize(
    ("number", "cardinal", "ordinal"),
    [(1, "one", "first"), (12, "twelve", "twelfth"), (21, "twenty-one", "twenty-first"),
     (40, "forty", "fortieth"),
     (1234, "one thousand two hundred thirty-four", "one thousand two hundred thirty-fourth")],
)  # fmt: skip
def test_english_numbers(number: int, cardinal: str, ordinal: str) -> None:
    assert en_cardinal(number) == cardinal
    assert en_ordinal(number) == ordinal


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("R$ 1.234,56", "mil duzentos e trinta e quatro reais e cinquenta e seis centavos"),
        ("R$1,00", "um real"),
        ("R$ 0,01", "um centavo"),
        ("R$ 2.000.000,00", "dois milhões de reais"),
        ("US$ 10", "dez dólares"),
        ("Vence em 25/11/2026.", "Vence em vinte e cinco de novembro de dois mil e vinte e seis."),
        ("Dia 01/05.", "Dia primeiro de maio."),
        ("O Sr. Silva e a Dra. Ana, etc.", "O senhor Silva e a doutora Ana, etcétera"),
        ("Às 14h30 ou 9h.", "Às catorze horas e trinta minutos ou nove horas."),
        ("Desconto de 10% no 1º mês.", "Desconto de dez por cento no primeiro mês."),
        ("Protocolo nº 42", "Protocolo número quarenta e dois"),
        ("3,5 litros", "três vírgula cinco litros"),
        ("1.500 clientes", "mil e quinhentos clientes"),
        ("2ª via", "segunda via"),
    ],
)
def test_portuguese_text(text: str, spoken: str) -> None:
    assert normalize(text, "pt") == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("$1,234.56", "one thousand two hundred thirty-four dollars and fifty-six cents"),
        ("$1", "one dollar"),
        ("Due 11/25/2026.", "Due November twenty-fifth, twenty twenty-six."),
        ("Due 25/11/2026.", "Due November twenty-fifth, twenty twenty-six."),
        ("Mr. Smith and Dr. Jones", "mister Smith and doctor Jones"),
        ("at 10:05", "at ten oh-five"),
        ("the 21st floor", "the twenty-first floor"),
        ("3.5% of 2,000", "three point five percent of two thousand"),
        ("order No. 7", "order number seven"),
        ("in 2005", "in two thousand five"),
    ],
)
def test_english_text(text: str, spoken: str) -> None:
    assert normalize(text, "en") == spoken


def test_abbreviations_do_not_split_sentences() -> None:
    text = normalize("O Sr. Silva ligou. A Dra. Ana atendeu! Tudo certo? Sim.", "pt")
    assert split_sentences(text) == ["O senhor Silva ligou.", "A doutora Ana atendeu!", "Tudo certo?", "Sim."]


def test_long_sentences_are_cut_at_commas_then_spaces() -> None:
    clause = "uma parte da frase que continua"
    text = ", ".join([clause] * 12) + "."
    pieces = split_sentences(text, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith((",", ".")) for piece in pieces)
    assert " ".join(pieces) == text
    words = split_sentences("palavra " * 60, max_chars=50)
    assert all(len(piece) <= 50 for piece in words) and " ".join(words) == ("palavra " * 60).strip()
