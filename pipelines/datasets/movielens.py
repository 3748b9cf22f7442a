"""MovieLens (ml-100k or ml-latest-small layout) as raw-input partitions, one per day.

Every rating becomes a ``rate`` event. A movie enters the catalog on the day of its first rating,
and each later day that brings new user tags for it lands an updated items row, so the catalog as of
a day never holds a tag applied after that day.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS, RawDay, empty_items
from pipelines.core.errors import MovieLensLayoutError

ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"  # ml-latest's marker, read as an empty genre list

RATINGS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(), "item_id": pl.String(), "rating": pl.Float64(),
    "ts": pl.Datetime("us", "UTC"),
}
MOVIES_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(), "title": pl.String(), "genres": pl.String(),
}
TAGS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(), "item_id": pl.String(), "tag": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
}



@dataclass(frozen=True)
class MovieLens:
    ratings: pl.DataFrame  # user_id str, item_id str, rating f64, ts Datetime("us","UTC")
    movies: pl.DataFrame  # item_id str, title str, genres str ("Action|Comedy"; "" when none)
    tags: pl.DataFrame  # user_id, item_id, tag str, ts  (empty for ml-100k)


def _epoch(col: str) -> pl.Expr:
    return pl.from_epoch(col, time_unit="s").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _read_100k(folder: Path) -> MovieLens:
    ratings = pl.read_csv(
        folder / "u.data", separator="\t", has_header=False,
        schema={"user": pl.Int64, "item": pl.Int64, "rating": pl.Float64, "ts": pl.Int64},
    ).select(
        user_id=pl.col("user").cast(pl.String), item_id=pl.col("item").cast(pl.String),
        rating="rating", ts=_epoch("ts"),
    )
    genre_file = folder / "u.genre"
    genres = ML100K_GENRES
    if genre_file.exists():
        lines = genre_file.read_text(encoding="latin-1").splitlines()
        genres = tuple(line.rsplit("|", 1)[0] for line in lines if line.strip())
    flags = [f"g{i}" for i in range(len(genres))]
    # u.item is latin-1, which the CSV reader does not decode; titles may hold quote characters.
    text = (folder / "u.item").read_bytes().decode("latin-1")
    raw = pl.read_csv(
        io.BytesIO(text.encode()), separator="|", has_header=False, quote_char=None,
        schema={"item": pl.Int64, "title": pl.String, "released": pl.String,
                "video_released": pl.String, "imdb_url": pl.String,
                **dict.fromkeys(flags, pl.Int8)},
    )
    movies = raw.select(
        item_id=pl.col("item").cast(pl.String),
        title=pl.col("title").fill_null(""),
        genres=pl.concat_str([pl.when(pl.col(f) == 1).then(pl.lit(g))
                              for f, g in zip(flags, genres, strict=True)],
                             separator="|", ignore_nulls=True),
    )
    return MovieLens(ratings, movies, pl.DataFrame(schema=TAGS_SCHEMA))


def _read_latest(folder: Path) -> MovieLens:
    ratings = pl.read_csv(
        folder / "ratings.csv",
        schema={"userId": pl.Int64, "movieId": pl.Int64, "rating": pl.Float64,
                "timestamp": pl.Int64},
    ).select(
        user_id=pl.col("userId").cast(pl.String), item_id=pl.col("movieId").cast(pl.String),
        rating="rating", ts=_epoch("timestamp"),
    )
    movies = pl.read_csv(
        folder / "movies.csv",
        schema={"movieId": pl.Int64, "title": pl.String, "genres": pl.String},
    ).select(
        item_id=pl.col("movieId").cast(pl.String),
        title=pl.col("title").fill_null(""),
        genres=pl.when(pl.col("genres") == NO_GENRES).then(pl.lit(""))
        .otherwise(pl.col("genres").fill_null("")),
    )
    tags = pl.DataFrame(schema=TAGS_SCHEMA)
    if (folder / "tags.csv").exists():
        tags = pl.read_csv(
            folder / "tags.csv",
            schema={"userId": pl.Int64, "movieId": pl.Int64, "tag": pl.String,
                    "timestamp": pl.Int64},
        ).select(
            user_id=pl.col("userId").cast(pl.String), item_id=pl.col("movieId").cast(pl.String),
            # "|" separates tags in the catalog, so it cannot appear inside one.
            tag=pl.col("tag").str.replace_all("|", "/", literal=True).str.strip_chars(),
            ts=_epoch("timestamp"),
        ).filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))
    return MovieLens(ratings, movies, tags)


def load_movielens(folder: Path) -> MovieLens:
    """Read an ml-100k (u.data, u.item, optional u.genre) or ml-latest-small (ratings.csv,
    movies.csv, optional tags.csv) folder; raise MovieLensLayoutError naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MovieLensLayoutError(f"MovieLens folder {folder} does not exist or is not a folder")
    if (folder / "u.data").exists() or (folder / "u.item").exists():
        missing = [n for n in ("u.data", "u.item") if not (folder / n).exists()]
        reader = _read_100k
    else:
        missing = [n for n in ("ratings.csv", "movies.csv") if not (folder / n).exists()]
        reader = _read_latest
    if missing:
        raise MovieLensLayoutError(
            f"{folder} is not a MovieLens folder: missing {', '.join(missing)} (expected u.data "
            "and u.item for ml-100k, or ratings.csv and movies.csv for ml-latest-small)"
        )
    return reader(folder)


def time_split(ratings: pl.DataFrame, share: float = 0.9
               ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train on the first ``share`` of ratings in time (confidence = the rating, low ones
    included); truth: the later ratings >= 4 by users and of items seen in training."""
    ratings = ratings.sort("ts")
    cut = ratings["ts"][int(share * ratings.height)]
    train = ratings.filter(pl.col("ts") < cut).select("user_id", "item_id",
                                                      confidence="rating")
    truth = ratings.filter(
        (pl.col("ts") >= cut) & (pl.col("rating") >= 4)
        & pl.col("user_id").is_in(train["user_id"].unique().implode())
        & pl.col("item_id").is_in(train["item_id"].unique().implode())
    ).select("user_id", "item_id")
    return train, truth


def _events(ratings: pl.DataFrame) -> pl.DataFrame:
    return ratings.select(
        event_id=pl.format("ml-{}-{}-{}", "user_id", "item_id", pl.col("ts").dt.epoch("s")),
        user_id="user_id", item_id="item_id", event_type=pl.lit("rate"), ts="ts",
        value="rating", text=pl.lit(None, pl.String),
    ).cast(EVENT_COLUMNS).sort("ts", "event_id")


def _tag_changes(ml: MovieLens, entries: pl.DataFrame, days: np.ndarray) -> pl.DataFrame:
    """First application of each (movie, tag), with the day its change lands in the catalog.

    Tags differing only in case count as one, and a tag that repeats one of the movie's genres
    adds nothing. Tags on movies that are never rated are dropped with their movie.
    """
    tags = (
        ml.tags.join(entries.select("item_id", "entry_day", "genres"), on="item_id", how="inner")
        .with_columns(key=pl.col("tag").str.to_lowercase())
        .filter(~pl.col("genres").str.to_lowercase().str.split("|").list.contains(pl.col("key")))
        .sort("ts", "user_id", "tag")
        .unique(["item_id", "key"], keep="first", maintain_order=True)
    )
    tag_day = tags["ts"].dt.date().to_numpy()
    pos = np.searchsorted(days, tag_day, side="left")
    landed = days[np.minimum(pos, len(days) - 1)]
    # A tag after the last day with ratings has no partition to land in.
    tags = tags.with_columns(land=pl.Series(landed)).filter(pl.Series(pos < len(days)))
    return tags.with_columns(day=pl.max_horizontal("land", "entry_day")).drop(
        "land", "key", "genres"
    )


def _catalog_rows(ml: MovieLens, ratings: pl.DataFrame, days: np.ndarray) -> pl.DataFrame:
    """One items row per (movie, day) on which the movie enters the catalog or gains tags."""
    entries = (
        ratings.group_by("item_id").agg(first_ts=pl.col("ts").min())
        .with_columns(entry_day=pl.col("first_ts").dt.date())
        .join(ml.movies, on="item_id", how="left")
        .with_columns(pl.col("title").fill_null(""), pl.col("genres").fill_null(""))
    )
    tags = _tag_changes(ml, entries, days)
    changes = pl.concat([
        entries.select("item_id", day="entry_day", changed_at="first_ts"),
        tags.select("item_id", "day", changed_at="ts"),
    ])
    rows = changes.group_by("item_id", "day").agg(updated_at=pl.col("changed_at").max())

    # Tags known on each row's day: cumulative per movie, in order of first application.
    known: dict[tuple[str, date], str] = {}
    running: dict[str, list[str]] = {}
    for item, day, tag in tags.sort("item_id", "day", "ts").select("item_id", "day", "tag").rows():
        running.setdefault(item, []).append(tag)
        known[(item, day)] = "|".join(running[item])
    user_tags = pl.DataFrame(
        {"item_id": [k[0] for k in known], "day": [k[1] for k in known],
         "user_tags": list(known.values())},
        schema={"item_id": pl.String, "day": pl.Date, "user_tags": pl.String},
    )
    rows = (
        rows.join(user_tags, on=["item_id", "day"], how="left")
        .sort("item_id", "day")
        .with_columns(pl.col("user_tags").fill_null(strategy="forward").over("item_id"))
        .join(entries.select("item_id", "title", "genres"), on="item_id", how="left")
    )
    genre_words = pl.col("genres").str.replace_all("|", ", ", literal=True)
    return rows.select(
        "day",
        item_id="item_id",
        title="title",
        description=pl.when(pl.col("genres") == "").then(pl.format("{} is a movie.", "title"))
        .when(pl.col("genres").str.contains("|", literal=True))
        .then(pl.format("{} is a movie in the genres {}.", "title", genre_words))
        .otherwise(pl.format("{} is a movie in the genre {}.", "title", genre_words)),
        category=pl.when(pl.col("genres") != "").then(pl.col("genres").str.split("|").list.first()),
        # Null rather than "" for a movie with neither genres nor tags yet.
        tags=pl.concat_str(
            [pl.when(pl.col("genres") != "").then("genres"), "user_tags"],
            separator="|", ignore_nulls=True,
        ).replace("", None),
        available=pl.lit(True),
        updated_at="updated_at",
    ).sort("day", "updated_at", "item_id")


def to_raw_days(ml: MovieLens) -> Iterator[RawDay]:
    """One RawDay per UTC day with ratings, oldest first; other days are skipped, and catalog
    changes made on them land with the next day that has ratings."""
    events = _events(ml.ratings).with_columns(day=pl.col("ts").dt.date())
    days = np.sort(events["day"].unique().to_numpy())
    items = _catalog_rows(ml, events.select("item_id", "ts"), days)
    events_by_day = events.partition_by("day", as_dict=True, maintain_order=True)
    items_by_day = items.partition_by("day", as_dict=True, maintain_order=True)
    for day in days.tolist():
        day_items = items_by_day.get((day,))
        yield RawDay(
            ds=day,
            events=events_by_day[(day,)].drop("day"),
            items=empty_items() if day_items is None else day_items.drop("day").cast(ITEM_COLUMNS),
        )
