"""The shared part of table locks that give way, without a database: the pacing of retries within the budget,
what the messages say of a blocker, and the phrase the operator reads back."""

from __future__ import annotations

import pytest

from initpipeline.spec.lockwaits import LockWaits, parse_lock_waits
from initpipeline.steps.migrate.locks import Blocker, BudgetSpent, GiveWay, LockPolicy, Wait, named_table

REPORT = Blocker("pid 4711", "report", "nightly-report", "10.0.0.7", "idle in transaction", 41.2)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def give_way(budget: float, draw: float = 1.0) -> tuple[GiveWay, FakeTime]:
    clock = FakeTime()
    return GiveWay(LockPolicy(wait=1, budget=budget), clock=lambda: clock.now, sleep=clock.sleep,
                   draw=lambda: draw), clock


def test_pauses_double_up_to_thirty_seconds() -> None:
    pacing, clock = give_way(budget=3600)
    for _ in range(9):
        clock.now += 1  # each attempt waits its second for the lock
        pacing.gave_way("1_add.up.sql", Wait("users", (REPORT,)), waited=1)
    assert clock.pauses == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert pacing.summary() == LockWaits(9, 9 + sum(clock.pauses))


def test_jitter_draws_each_pause_from_its_upper_half() -> None:
    lowest, clock = give_way(budget=3600, draw=0.0)
    for _ in range(3):
        lowest.gave_way("f", Wait("users", ()), waited=1)
    assert clock.pauses == [0.25, 0.5, 1]


def test_the_budget_counts_from_the_first_wait_and_ends_before_a_retry_past_it() -> None:
    pacing, clock = give_way(budget=5)
    clock.now += 1
    pacing.gave_way("V2__email.sql", Wait("users", (REPORT,)), waited=1)  # pause 0.5, at 1.5 of 5
    clock.now += 1
    pacing.gave_way("V2__email.sql", Wait("users", (REPORT,)), waited=1)  # pause 1, at 3.5
    clock.now += 1
    with pytest.raises(BudgetSpent) as spent:  # at 4.5, a pause of 2 would start the retry after 5
        pacing.gave_way("V2__email.sql", Wait("users", (REPORT,)), waited=1)
    assert clock.pauses == [0.5, 1]
    assert "migration V2__email.sql gave way to table locks 3 time(s)" in spent.value.message
    assert "retry budget of 5.0s is spent" in spent.value.message
    assert "held by pid 4711 (report, 'nightly-report'" in spent.value.message
    assert parse_lock_waits(spent.value.message) == LockWaits(3, 4.5)


def test_a_blocker_is_described_by_who_and_how_long_never_by_its_query() -> None:
    assert Wait("users", (REPORT,)).describe() == (
        "waiting for a lock on users: held by pid 4711 (report, 'nightly-report', 10.0.0.7, idle in transaction, "
        "transaction open 41 s)")
    unknown = Wait("", (), note="cannot tell who: the PROCESS privilege is missing")
    assert unknown.describe() == ("waiting for a lock on a table: held by a session the runner cannot see "
                                  "(cannot tell who: the PROCESS privilege is missing)")
    many = Wait("t", tuple(Blocker(f"connection {n}") for n in range(5))).describe()
    assert many.endswith("connection 2 (user unknown) and 2 more")


@pytest.mark.parametrize("sql,table", [
    ("ALTER TABLE users ADD COLUMN email text", "users"),
    ("-- touches the orders table from the shop\nCREATE INDEX CONCURRENTLY i ON public.orders (id)", "public.orders"),
    ("/* ON nothing */ INSERT INTO `audit log` VALUES (1)", "audit log"),
    ('ALTER TABLE ONLY "Users" ADD x int', "Users"),
    ("DROP TABLE IF EXISTS old_things", "old_things"),
    ("SELECT 1", ""),
])
def test_named_table_is_the_first_table_outside_comments(sql: str, table: str) -> None:
    assert named_table(sql) == table


def test_the_phrase_is_read_back_from_a_longer_message() -> None:
    message = "applied 2 migration(s) in 14.0s: a.sql, b.sql; 0 already applied; " + LockWaits(3, 12.25).phrase()
    assert parse_lock_waits(message) == LockWaits(3, 12.2)
    assert parse_lock_waits("applied 1 migration(s) in 0.1s") is None
    assert parse_lock_waits(None) is None
