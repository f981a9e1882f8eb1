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


def test_shows_stored_extras_are_read_at_most_once_a_minute():
    """show's threshold override and week of snapshots come from the store at most
    once per OUTLOOK_TTL per process (a person's reply does not wait for them each
    time); after that, a change made meanwhile is seen."""
    from datetime import UTC, datetime, timedelta

    from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
    from bot.commands.outlook import OUTLOOK_TTL, AccountOutlook
    from bot.domain.alerts import AlertLevel, Thresholds
    from bot.domain.credits import Balance

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    tick = [0.0]
    alerts = MemoryAlertStore(MemoryStore())
    alerts.add_snapshots([("globex", Balance(unlimited=False, remaining=5_000))], at=now)
    outlook = AccountOutlook(
        alerts,
        thresholds=Thresholds(below=1_000, percent=0),
        horizon_hours=None,
        monotonic=lambda: tick[0],
    )
    balance = Balance(unlimited=False, remaining=2_000)
    first = outlook.of("globex", balance, hours_left=None, now=now)
    assert first.level is AlertLevel.OK
    # Meanwhile: a threshold of 3,000 and another snapshot.
    alerts.set_threshold("globex", 3_000, by="U1", at=now)
    later = now + timedelta(minutes=1)
    alerts.add_snapshots([("globex", Balance(unlimited=False, remaining=100))], at=later)
    tick[0] += OUTLOOK_TTL / 2
    within = outlook.of("globex", balance, hours_left=None, now=later)
    assert within.level is AlertLevel.OK  # the override read a moment ago still stands
    tick[0] += OUTLOOK_TTL
    after = outlook.of("globex", balance, hours_left=None, now=later)
    assert after.level is AlertLevel.LOW  # at or below the new 3,000
