import pytest

from common.ids import bigint_id


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("007", 7), ("9" * 18, 10**18 - 1)])
def test_ascii_digits_name_a_bigint(text, expected):
    assert bigint_id(text) == expected


@pytest.mark.parametrize("text", ["", "9" * 19, "²", "١٢", "-1", "+1", " 1", "1\n", "1.0", "0x1", "1e3"])
def test_anything_else_names_nothing(text):
    assert bigint_id(text) is None


@pytest.mark.parametrize("value", [None, 1, 1.0, True, ["1"]])
def test_non_strings_name_nothing(value):
    assert bigint_id(value) is None
