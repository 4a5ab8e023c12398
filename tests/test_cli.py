import pytest

from occface.cli import parse_int_ranges


def test_parse_int_ranges_by_hand():
    assert parse_int_ranges("0-6") == [0, 1, 2, 3, 4, 5, 6]
    assert parse_int_ranges("7,9") == [7, 9]
    assert parse_int_ranges(["0-1", "4 6-7"]) == [0, 1, 4, 6, 7]
    assert parse_int_ranges("") == []
    with pytest.raises(ValueError):
        parse_int_ranges("a-3")
