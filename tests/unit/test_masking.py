"""Numbers typed into free text are masked for integrators, in any digits they are typed in."""

from __future__ import annotations

import pytest

from domain.permissions import mask_numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("电话13812345678请回电", "电话138****5678请回电"),
        ("电话１３８１２３４５６７８请回电", "电话１３８****５６７８请回电"),
        ("身份证41092819900101127X", "身份证410928********127X"),
        ("身份证４１０９２８１９９００１０１１２７Ｘ", "身份证４１０９２８********１２７Ｘ"),
        ("座机0393-123456", "座机0***-******"),  # the shortest: ten digits, a landline
        ("座机０３９３－１２３４５６转", "座机０***－******转"),
        (
            "编号A13812345678",
            "编号A138****5678",
        ),  # a letter before it no longer hides it (issue 19: Tel13866667777)
    ],
)
def test_phone_and_id_numbers_are_masked_in_ascii_and_full_width_digits(
    text: str, masked: str
) -> None:
    assert mask_numbers({"comment": [text]}) == {"comment": [masked]}


@pytest.mark.parametrize(
    "text",
    [
        "工单号 2025092612345678901",  # longer than any of them: a reference, not a phone
        "订单１３８１２３４５６７８９",  # twelve digits
        "门牌12号，面积138平方米",
        "座机0393-12345",  # nine digits: fewer than any personal number has
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_numbers(text) == text
