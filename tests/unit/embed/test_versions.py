"""Which encoder a night uses and which version its evaluation decides, from the records."""

from __future__ import annotations

from datetime import date

from pipelines.embed.versions import EncoderVersion, adopted_before, awaiting, due

D = date(2026, 10, 10)


def _v(name: str, trained: int, decided: int | None = None,
       adopted: bool | None = None) -> EncoderVersion:
    return EncoderVersion(name, date(2026, 10, trained), date(2026, 9, 20 + trained),
                          date(2026, 10, decided) if decided else None, adopted)


def test_a_night_uses_the_newest_version_adopted_before_it() -> None:
    versions = [_v("a", 1, 1, True), _v("b", 4, 5, False), _v("c", 6, 8, True)]
    assert adopted_before(versions, date(2026, 10, 1)) is None  # decided that night
    assert adopted_before(versions, date(2026, 10, 2)).version == "a"
    assert adopted_before(versions, date(2026, 10, 8)).version == "a"  # refused b
    assert adopted_before(versions, date(2026, 10, 9)).version == "c"
    assert adopted_before([], D) is None


def test_the_evaluation_decides_the_newest_open_version_once() -> None:
    versions = [_v("a", 1, 1, True), _v("b", 4), _v("c", 6)]
    assert awaiting(versions, date(2026, 10, 5)).version == "b"
    assert awaiting(versions, date(2026, 10, 6)).version == "c"  # b is superseded
    assert awaiting(versions, date(2026, 10, 3)) is None  # nothing newer than a
    decided = [_v("a", 1, 1, True), _v("c", 6, 7, False)]
    assert awaiting(decided, date(2026, 10, 7)).version == "c"  # a rerun of its night
    assert awaiting(decided, date(2026, 10, 8)) is None
    assert awaiting([_v("old", 1), _v("x", 2, 3, True)], date(2026, 10, 5)) is None


def test_the_cadence_counts_days_from_the_epoch() -> None:
    thursdays = [d for d in range(1, 32) if due(date(2026, 10, d), 7)]
    assert thursdays == [1, 8, 15, 22, 29] and date(2026, 10, 1).weekday() == 3
    assert not any(due(date(2026, 10, d), 0) for d in range(1, 8))
    assert due(date(2026, 10, 2), 0, force=True)
    assert all(due(date(2026, 10, d), 1) for d in range(1, 8))
