import pytest

from bot.commands.outlook import closest, typing_distance

NAMES = ["acme-eu", "acme-us", "globex", "initech", "hooli", "a@example.com"]


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("acme-ue", "acme-eu"),  # a swapped pair beats a substitution
        ("acme-e", "acme-eu"),
        ("ACME-US", "acme-us"),  # the name in another case
        ("globx", "globex"),
        ("initehc", "initech"),
        ("hoolie", "hooli"),
        ("a@exmaple.com", "a@example.com"),
        ("zzzzzz", None),
        ("acme", None),  # too far from any
    ],
)
def test_an_unknown_name_gets_the_closest_known_one(typed, suggested):
    assert closest(typed, NAMES) == suggested


def test_typing_distance_counts_a_swap_as_one_slip():
    assert typing_distance("acme-ue", "acme-eu", limit=2) == 1
    assert typing_distance("abc", "abc", limit=2) == 0
    assert typing_distance("abc", "xyz", limit=2) == 3  # over the limit
    assert typing_distance("a", "abcdef", limit=2) == 3
