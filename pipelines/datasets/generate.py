"""Deterministic synthetic raw logs in the raw-input contract, at any scale.

Users have a latent taste over topics, items have a topic and a Zipf-like popularity, and each day
brings sessions (view, then maybe click, add to cart, purchase), ratings, a few reviews, catalog
changes and a small share of malformed rows. The same spec gives byte-identical frames: every draw
comes from one ``numpy.random.default_rng(seed)`` split into independent child streams, so the
number of rows of a day never depends on how many draws another day made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_TYPES, ITEM_COLUMNS, RawDay, empty_items
from pipelines.datasets.vocabulary import (
    BODY_TEMPLATES,
    NEGATIVE_REVIEWS,
    OPENING_TEMPLATES,
    POSITIVE_REVIEWS,
    TITLE_ADJECTIVES,
    TITLE_TEMPLATES,
    TOPICS,
    Topic,
)


@dataclass(frozen=True)
class GenerateSpec:
    n_users: int = 500
    n_items: int = 300
    n_days: int = 30
    start: date = date(2026, 10, 1)
    events_per_day: int = 1000  # mean; daily volume varies (weekly rhythm + noise)
    n_topics: int = 12
    new_item_share: float = 0.2  # share of items first seen after day 0, spread over the days
    malformed_share: float = 0.01
    seed: int = 7


# Session funnel: every session opens with a view; the other steps follow with these chances.
P_CLICK, P_CART, P_PURCHASE, P_RATE, P_REVIEW = 0.35, 0.30, 0.50, 0.10, 0.012
# Monday..Sunday volume factors; weekends are busier.
WEEKLY = np.array([0.93, 0.95, 0.96, 0.98, 1.03, 1.10, 1.05])
# Share of session starts per UTC hour: quiet nights, busy evenings.
HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 6, 6, 5, 5, 5, 6, 7, 8, 8, 7, 5, 3], float)
ZIPF_EXPONENT = 1.1
TASTE_ALPHA = 0.2  # a small Dirichlet concentration makes most users like 1-3 topics
TASTE_FLOOR = 0.03  # share of taste spread evenly so a user still wanders outside their topics
UPDATE_SHARE = 0.06  # items whose description is rewritten once after release
RETIRE_SHARE = 0.03  # items that become unavailable once after release
DEFECTS: tuple[str, ...] = (
    "null_user", "unknown_type", "future_ts", "unknown_item", "bad_rating", "negative_dwell",
    "duplicate",
)
UNKNOWN_ITEM = "i99999x"  # the trailing letter keeps it out of any generated catalog
US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True)
class _Catalog:
    topic: np.ndarray  # topic index per item
    popularity: np.ndarray  # Zipf weight per item
    release: np.ndarray  # day index of first appearance
    retire: np.ndarray  # day index from which the item is unavailable (n_days = never)
    items: list[pl.DataFrame]  # the items partition of each day


@dataclass(frozen=True)
class _Users:
    taste: np.ndarray  # (n_users, n_topics), rows sum to 1
    activity: np.ndarray  # selection probability per user


def _check(spec: GenerateSpec) -> None:
    if not 1 <= spec.n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be between 1 and {len(TOPICS)}, got {spec.n_topics}")
    if spec.n_users < 1 or spec.n_items < 1 or spec.n_days < 1 or spec.events_per_day < 0:
        raise ValueError(f"need n_users, n_items, n_days >= 1 and events_per_day >= 0: {spec}")
    if not 0.0 <= spec.new_item_share < 1.0 or not 0.0 <= spec.malformed_share <= 0.5:
        raise ValueError("new_item_share must be in [0, 1) and malformed_share in [0, 0.5]")


def _streams(spec: GenerateSpec) -> tuple[np.random.Generator, ...]:
    """Independent streams: catalog, users, daily volumes, then one per day."""
    return tuple(np.random.default_rng(spec.seed).spawn(3 + spec.n_days))


def _day_start_us(ds: date) -> int:
    return int(datetime(ds.year, ds.month, ds.day, tzinfo=UTC).timestamp()) * 1_000_000


def _timestamps(us: np.ndarray) -> pl.Series:
    return pl.Series(us.astype(np.int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _daily_volumes(spec: GenerateSpec) -> np.ndarray:
    """Well-formed event rows per day: Poisson around the mean times a weekly rhythm and noise."""
    rng = _streams(spec)[2]
    weekday = np.array([(spec.start + timedelta(days=d)).weekday() for d in range(spec.n_days)])
    factor = WEEKLY[weekday] / WEEKLY.mean() * rng.lognormal(0.0, 0.08, spec.n_days)
    return rng.poisson(spec.events_per_day * factor)


def _malformed_counts(spec: GenerateSpec) -> np.ndarray:
    return np.floor(_daily_volumes(spec) * spec.malformed_share + 0.5).astype(np.int64)


def expected_malformed(spec: GenerateSpec) -> int:
    """How many malformed rows generate() injects over all days (each has exactly one defect)."""
    _check(spec)
    return int(_malformed_counts(spec).sum())


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(template: str, topic: Topic, rng: np.random.Generator, title: bool = False) -> str:
    noun, noun2 = (topic.nouns[i] for i in rng.choice(len(topic.nouns), 2, replace=False))
    if not title:  # nouns sit mid-sentence in running text
        noun, noun2 = noun.lower(), noun2.lower()
    act, act2 = (topic.activities[i] for i in rng.choice(len(topic.activities), 2, replace=False))
    adj = _pick(rng, topic.adjectives)
    a_adj = ("an " if adj[0] in "aeiou" else "a ") + adj
    text = template.format(
        tadj=_pick(rng, TITLE_ADJECTIVES), adj=adj, a_adj=a_adj,
        adj_t=adj.capitalize(), noun=noun, noun2=noun2, activity=act, activity2=act2,
        subject=topic.subject,
    )
    return text[0].upper() + text[1:]


def _title(topic: Topic, rng: np.random.Generator) -> str:
    return _fill(_pick(rng, TITLE_TEMPLATES), topic, rng, title=True)


def _description(topic: Topic, rng: np.random.Generator) -> str:
    n_body = int(rng.integers(1, 4))  # 2-4 sentences in all
    body = rng.choice(len(BODY_TEMPLATES), n_body, replace=False)
    sentences = [_pick(rng, OPENING_TEMPLATES)] + [BODY_TEMPLATES[i] for i in body]
    return " ".join(_fill(s, topic, rng) for s in sentences)


def _tags(topic: Topic, rng: np.random.Generator) -> str:
    picked = rng.choice(len(topic.tags), int(rng.integers(2, 4)), replace=False)
    return "|".join(topic.tags[i] for i in sorted(picked))


def _review_pool(n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """Review texts indexed by (topic, positive?, variant)."""
    pool = np.empty((n_topics, 2, 8), dtype=object)
    for t in range(n_topics):
        for positive, templates in enumerate((NEGATIVE_REVIEWS, POSITIVE_REVIEWS)):
            for v in range(pool.shape[2]):
                pool[t, positive, v] = _fill(templates[v % len(templates)], TOPICS[t], rng)
    return pool


def _item_ids(index: np.ndarray) -> list[str]:
    return [f"i{i + 1:05d}" for i in index]


def _catalog(spec: GenerateSpec, rng: np.random.Generator) -> _Catalog:
    n, days = spec.n_items, spec.n_days
    topic = rng.integers(spec.n_topics, size=n)
    popularity = (rng.permutation(n) + 1.0) ** -ZIPF_EXPONENT
    # At least one item is there from day 0, so the first day has something to interact with.
    n_new = min(int(round(n * spec.new_item_share)), n - 1) if days > 1 else 0
    # Ids grow with release day, as a real catalog's would.
    release = np.sort(np.concatenate([np.zeros(n - n_new, int), rng.integers(1, days, n_new)]))
    never = np.full(n, days)
    can_change = release < days - 1
    changed = can_change & (rng.random(n) < UPDATE_SHARE + RETIRE_SHARE)
    retires = changed & (rng.random(n) < RETIRE_SHARE / (UPDATE_SHARE + RETIRE_SHARE))
    retires[0] = False  # item 1 is released on day 0 and stays live, so no day is left empty
    change_day = np.where(changed, release + 1 + (rng.random(n) * (days - 1 - release)).astype(int),
                          never)
    retire = np.where(retires, change_day, never)

    title, desc, tags = [], [], []
    for t in topic:
        title.append(_title(TOPICS[t], rng))
        desc.append(_description(TOPICS[t], rng))
        tags.append(_tags(TOPICS[t], rng))
    # Catalog loads land in the first hours of a day.
    landed = rng.integers(0, 6 * US_PER_HOUR, n)
    changed_at = rng.integers(0, US_PER_DAY, n)
    new_desc = [_description(TOPICS[t], rng) if c and not r else d
                for t, c, r, d in zip(topic, changed, retires, desc, strict=True)]

    ids = np.array(_item_ids(np.arange(n)), dtype=object)
    starts = np.array([_day_start_us(spec.start + timedelta(days=d)) for d in range(days)])
    rows = pl.DataFrame({
        "item_id": np.concatenate([ids, ids[changed]]),
        "title": np.concatenate([title, np.array(title, dtype=object)[changed]]),
        "description": np.concatenate([desc, np.array(new_desc, dtype=object)[changed]]),
        "category": np.concatenate([[TOPICS[t].name for t in topic],
                                    [TOPICS[t].name for t in topic[changed]]]),
        "tags": np.concatenate([tags, np.array(tags, dtype=object)[changed]]),
        "available": np.concatenate([np.ones(n, bool), ~retires[changed]]),
        "updated_at": _timestamps(np.concatenate([starts[release] + landed,
                                                  starts[change_day[changed]]
                                                  + changed_at[changed]])),
        "_day": np.concatenate([release, change_day[changed]]),
    }, schema_overrides={k: v for k, v in ITEM_COLUMNS.items() if k != "updated_at"})
    rows = rows.sort("_day", "updated_at", "item_id", maintain_order=True)
    per_day = [empty_items() for _ in range(days)]
    for (day,), part in rows.partition_by("_day", as_dict=True, maintain_order=True).items():
        per_day[int(day)] = part.drop("_day")
    return _Catalog(topic, popularity, release, retire, per_day)


def _users(spec: GenerateSpec, rng: np.random.Generator) -> _Users:
    raw = rng.dirichlet(np.full(spec.n_topics, TASTE_ALPHA), size=spec.n_users)
    taste = (1 - TASTE_FLOOR) * raw + TASTE_FLOOR / spec.n_topics
    # A wide log-normal gives a heavy tail: a few very active users and many with one event.
    activity = rng.lognormal(0.0, 1.5, spec.n_users)
    return _Users(taste, activity / activity.sum())


def _sample_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row, with probability proportional to the row's weights."""
    cum = np.cumsum(weights, axis=1)
    draw = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= draw[:, None]).sum(axis=1), weights.shape[1] - 1)


def _choose_items(user: np.ndarray, live: np.ndarray, cat: _Catalog, users: _Users,
                  n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """Item per session with P(item) proportional to taste[user, topic(item)] * popularity[item].

    Drawn in two stages (topic, then item within the topic), which gives the same distribution
    without a users-by-items matrix.
    """
    pop = np.where(live, cat.popularity, 0.0)
    mass = np.bincount(cat.topic, weights=pop, minlength=n_topics)
    topic = _sample_rows(users.taste[user] * mass, rng)
    item = np.empty(len(user), np.int64)
    for t in range(n_topics):
        rows = np.flatnonzero(topic == t)
        if rows.size == 0:
            continue
        members = np.flatnonzero((cat.topic == t) & live)
        cum = np.cumsum(pop[members])
        pos = np.searchsorted(cum, rng.random(rows.size) * cum[-1], side="right")
        item[rows] = members[np.minimum(pos, members.size - 1)]
    return item


def _sessions(n_events: int, rng: np.random.Generator) -> np.ndarray:
    """A (sessions, 6) mask of which event types each session has, exactly n_events in all."""
    per_session = 1 + P_CLICK * (1 + P_CART * (1 + P_PURCHASE)) + P_RATE + P_REVIEW
    n = int(n_events / per_session * 1.1) + 8
    while True:
        u = rng.random((n, 5))
        click = u[:, 0] < P_CLICK
        cart = click & (u[:, 1] < P_CART)
        purchase = cart & (u[:, 2] < P_PURCHASE)
        mask = np.column_stack([np.ones(n, bool), click, cart, purchase, u[:, 3] < P_RATE,
                                u[:, 4] < P_REVIEW])
        ends = np.cumsum(mask.sum(axis=1))
        if ends[-1] >= n_events:
            break
        n *= 2
    keep = int(np.searchsorted(ends, n_events)) + 1
    mask = mask[:keep]
    # The last session may be cut short; its events are a prefix, so it still opens with a view.
    excess = int(ends[keep - 1] - n_events)
    if excess:
        cols = np.flatnonzero(mask[-1])
        mask[-1, cols[len(cols) - excess:]] = False
    return mask


@dataclass
class _Events:
    """Event columns as numpy arrays; -1 marks a null user or an item outside the catalog."""

    user: np.ndarray
    item: np.ndarray
    kind: np.ndarray  # index into EVENT_TYPES; len(EVENT_TYPES) is "unknown_type"
    ts: np.ndarray  # microseconds since the epoch
    value: np.ndarray  # NaN for null
    text: np.ndarray  # object, None for null
    eid: np.ndarray

    def take(self, idx: np.ndarray) -> _Events:
        return _Events(*(getattr(self, f)[idx] for f in _EVENT_FIELDS))

    def concat(self, other: _Events) -> _Events:
        return _Events(*(np.concatenate([getattr(self, f), getattr(other, f)])
                         for f in _EVENT_FIELDS))


_EVENT_FIELDS = ("user", "item", "kind", "ts", "value", "text", "eid")


def _well_formed(day: int, n_events: int, first_eid: int, spec: GenerateSpec, cat: _Catalog,
                 users: _Users, reviews: np.ndarray, rng: np.random.Generator) -> _Events:
    mask = _sessions(n_events, rng)
    n = len(mask)
    user = rng.choice(spec.n_users, size=n, p=users.activity)
    live = (cat.release <= day) & (cat.retire > day)
    item = _choose_items(user, live, cat, users, spec.n_topics, rng)

    hour = rng.choice(24, size=n, p=HOURLY / HOURLY.sum())
    start = hour * US_PER_HOUR + rng.integers(0, US_PER_HOUR, n)
    dwell = np.round(rng.lognormal(3.3, 0.9, n), 1)
    gaps = rng.exponential([8.0, 40.0, 90.0, 300.0, 200.0], size=(n, 5)) * 1e6
    offset = np.zeros((n, 6))
    offset[:, 1] = 1e6 + gaps[:, 0]  # click
    offset[:, 2] = offset[:, 1] + gaps[:, 1]  # add to cart
    offset[:, 3] = offset[:, 2] + gaps[:, 2]  # purchase
    offset[:, 4] = dwell * 1e6 + gaps[:, 3]  # rate, after reading
    offset[:, 5] = offset[:, 4] + gaps[:, 4]  # review
    # Ratings follow taste: the user's liking of the topic relative to their favourite.
    t = cat.topic[item]
    liking = users.taste[user, t] / users.taste[user].max(axis=1)
    rating = np.clip(np.round(1.6 + 3.2 * liking + rng.normal(0.0, 0.9, n)), 1, 5)
    text = reviews[t, (liking > 0.5).astype(int), rng.integers(reviews.shape[2], size=n)]

    session, kind = np.nonzero(mask)
    ts_in_day = np.minimum(start[session] + offset[session, kind].astype(np.int64), US_PER_DAY - 1)
    value = np.full(len(kind), np.nan)
    value[kind == 0] = dwell[session[kind == 0]]
    value[kind == 4] = rating[session[kind == 4]]
    texts = np.full(len(kind), None, dtype=object)
    texts[kind == 5] = text[session[kind == 5]]

    ts = _day_start_us(spec.start + timedelta(days=day)) + ts_in_day
    order = np.argsort(ts, kind="stable")
    events = _Events(user[session], item[session], kind, ts, value, texts,
                     np.arange(len(kind), dtype=np.int64)).take(order)
    events.eid = first_eid + np.arange(len(kind), dtype=np.int64)
    return events


def _inject(events: _Events, k: int, rng: np.random.Generator) -> _Events:
    """Give k rows exactly one defect each; a duplicate is an extra identical copy of a row."""
    n = len(events.kind)
    quota = dict(zip(DEFECTS, rng.multinomial(k, np.full(len(DEFECTS), 1 / len(DEFECTS))),
                     strict=True))
    free = np.ones(n, bool)

    def take(count: int, allowed: np.ndarray) -> np.ndarray:
        pool = np.flatnonzero(free & allowed)
        rows = rng.choice(pool, size=min(count, pool.size), replace=False)
        free[rows] = False
        return np.sort(rows)

    everywhere = np.ones(n, bool)
    bad_rating = take(quota["bad_rating"], events.kind == 4)
    negative = take(quota["negative_dwell"], events.kind == 0)
    # Too few rate or view rows on a tiny day: the rest become null users, keeping k exact.
    quota["null_user"] += quota["bad_rating"] - bad_rating.size
    quota["null_user"] += quota["negative_dwell"] - negative.size
    null_user = take(quota["null_user"], everywhere)
    unknown_type = take(quota["unknown_type"], everywhere)
    future = take(quota["future_ts"], everywhere)
    unknown_item = take(quota["unknown_item"], everywhere)
    originals = take(quota["duplicate"], everywhere)

    events.value[bad_rating] = 9.0
    events.value[negative] = -np.round(rng.uniform(1.0, 120.0, negative.size), 1)
    events.user[null_user] = -1
    events.kind[unknown_type] = len(EVENT_TYPES)
    # Into the next day and some hours more: a clock that runs ahead.
    day_end = events.ts[future] - events.ts[future] % US_PER_DAY + US_PER_DAY
    events.ts[future] = day_end + rng.integers(US_PER_HOUR, 12 * US_PER_HOUR, future.size)
    events.item[unknown_item] = -1

    out = events.concat(events.take(originals))
    order = np.argsort(out.ts, kind="stable")  # a re-delivered copy sits right after its original
    return out.take(order)


def _events_frame(events: _Events) -> pl.DataFrame:
    kinds = {i: name for i, name in enumerate((*EVENT_TYPES, "unknown_type"))}
    raw = pl.DataFrame({
        "eid": events.eid, "user": events.user, "item": events.item, "kind": events.kind,
        "ts": _timestamps(events.ts), "value": pl.Series(events.value, nan_to_null=True),
        "text": pl.Series(events.text.tolist(), dtype=pl.String),
    })

    def padded(col: str, prefix: str, width: int) -> pl.Expr:
        return pl.lit(prefix) + (pl.col(col) + 1).cast(pl.String).str.zfill(width)

    return raw.select(
        event_id=pl.lit("e") + pl.col("eid").cast(pl.String).str.zfill(10),
        user_id=pl.when(pl.col("user") >= 0).then(padded("user", "u", 5)),
        item_id=pl.when(pl.col("item") >= 0).then(padded("item", "i", 5))
        .otherwise(pl.lit(UNKNOWN_ITEM)),
        event_type=pl.col("kind").replace_strict(kinds, return_dtype=pl.String),
        ts=pl.col("ts"),
        value=pl.col("value"),
        text=pl.col("text"),
    ).cast(EVENT_COLUMNS)


def generate(spec: GenerateSpec) -> Iterator[RawDay]:
    """Yield one RawDay per day, oldest first; the same spec always yields the same frames."""
    _check(spec)
    catalog_rng, user_rng, _, *day_rngs = _streams(spec)
    cat = _catalog(spec, catalog_rng)
    users = _users(spec, user_rng)
    reviews = _review_pool(spec.n_topics, catalog_rng)
    volumes = _daily_volumes(spec)
    malformed = _malformed_counts(spec)
    first_eid = 1
    for day in range(spec.n_days):
        rng = day_rngs[day]
        events = _well_formed(day, int(volumes[day]), first_eid, spec, cat, users, reviews, rng)
        first_eid += int(volumes[day])
        events = _inject(events, int(malformed[day]), rng)
        yield RawDay(spec.start + timedelta(days=day), _events_frame(events), cat.items[day])
