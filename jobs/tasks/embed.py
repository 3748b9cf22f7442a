"""embed: item texts and user-history texts into vectors, and the user-interest memory.

The encoder is the newest fine-tuned version an evaluation adopted before ``ds``
(``pipelines.embed.versions``), else the configured base model. While a newer version awaits
its evaluation, the catalog is embedded with it too, for evaluate to compare.

Reads the catalog, the clean events of the history window, the encoder registry, the embedding
cache of each encoder and the latest earlier interest memory; writes
``embeddings/{items,users}/ds=D``, the texts it embedded tonight to
``embeddings/cache/<model>/ds=D``, ``embeddings/interest/ds=D`` and, with a version awaiting,
``embeddings/candidate/items/ds=D``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.failpoints import failpoint
from pipelines.embed import cache

if TYPE_CHECKING:
    from pipelines.embed.encoder import Encoder
    from pipelines.embed.versions import EncoderVersion

log = get_logger("tasks")

VECTORS = {"items": cat.ITEM_VECTORS, "users": cat.USER_VECTORS}
# A lake on object storage hands a fine-tuned encoder to transformers through a local copy.
ENCODER_CACHE = Path(tempfile.gettempdir()) / "recs-encoders"


def run(ctx: RunContext) -> dict:
    from jobs.tasks.finetune import registered
    from pipelines.embed.versions import adopted_before, awaiting

    started = time.perf_counter()
    ctx.lake.require(cat.USER_FEATURES, ds=ctx.ds)
    cfg = ctx.settings.embed
    versions = registered(ctx.lake)
    current = adopted_before(versions, ctx.ds)
    encoder = load_encoder(ctx, current)
    catalog = ctx.catalog()
    texts = cache.day_texts(encoder, catalog,
                            ctx.clean_events(ctx.settings.features.history_days), cfg)
    vectors, counts = _embed(ctx, encoder, texts)
    for kind, frame in vectors.items():
        ctx.lake.write(VECTORS[kind], frame, ds=ctx.ds)
        failpoint("embed:vectors")
    interest = _update_interest(ctx, vectors["users"], encoder.cache_key)
    candidate = awaiting(versions, ctx.ds)
    tuned = _embed_candidate(ctx, candidate, catalog) if candidate else None
    return ctx.summary("embed", model=encoder.cache_key,
                       encoder=current.version if current else None, device=encoder.device,
                       precision=encoder.precision, batch_size=encoder.batch_size,
                       shards=cfg.shards, **counts, interest=interest, candidate=tuned,
                       seconds=time.perf_counter() - started)


def load_encoder(ctx: RunContext, version: EncoderVersion | None) -> Encoder:
    """The configured base encoder, or a fine-tuned version from the registry."""
    from pipelines.embed.encoder import Encoder

    cfg = ctx.settings.embed
    if version is None:
        return Encoder.load(cfg, ctx.settings.device)
    folder = ctx.lake.local_folder(cat.ENCODER_MODEL, ENCODER_CACHE, version=version.version)
    return Encoder.load(cfg.model_copy(update={"model": str(folder)}), ctx.settings.device,
                        name=f"tuned-{version.version}")


def _embed(ctx: RunContext, encoder: Encoder, texts: dict[str, pl.DataFrame]
           ) -> tuple[dict[str, pl.DataFrame], dict[str, dict]]:
    """The vectors of ``texts`` per kind, the ones not in the encoder's cache embedded now and
    added to it, and how many of each kind were."""
    key = encoder.cache_key
    cache_days = [d for d in ctx.lake.days(cat.EMBED_CACHE, model=key) if d <= ctx.ds]
    cached = ctx.read_days(cat.EMBED_CACHE, cache_days, model=key)
    cached = (cached if cached is not None else cache.empty_cache(encoder.dim)).unique(
        "text_hash", keep="first", maintain_order=True)
    missing = cache.to_embed(texts, cached)
    log.info("%d distinct texts to embed with %s on %s (%s)", missing.height, key,
             encoder.device, encoder.precision)
    fresh = _encode(ctx, encoder, missing)
    vectors = cache.vectors(texts, pl.concat([cached, fresh]), key)
    # A rerun of this ds finds its own entries cached and embeds nothing: keep them, rather
    # than overwrite the day's cache partition with an empty one.
    if fresh.height or not ctx.lake.exists(cat.EMBED_CACHE, model=key, ds=ctx.ds):
        ctx.lake.write(cat.EMBED_CACHE, fresh, model=key, ds=ctx.ds)
    return vectors, {kind: cache.counts(texts[kind], missing) for kind in texts}


def _embed_candidate(ctx: RunContext, version: EncoderVersion, catalog: pl.DataFrame) -> dict:
    """The catalog's vectors by the version awaiting its evaluation (through its own cache,
    so the night that adopts it embeds only what changed since)."""
    encoder = load_encoder(ctx, version)
    texts = cache.day_texts(encoder, catalog, None, ctx.settings.embed)
    vectors, counts = _embed(ctx, encoder, texts)
    ctx.lake.write(cat.CANDIDATE_ITEM_VECTORS, vectors["items"], ds=ctx.ds)
    return {"version": version.version, "model": encoder.cache_key, **counts["items"]}


def _encode(ctx: RunContext, encoder: Encoder, texts: pl.DataFrame) -> pl.DataFrame:
    """``text_hash, vector`` for ``texts``: in this process, or in shards on Dask workers."""
    from pipelines.embed.encoder import vectors_frame

    shards = ctx.settings.embed.shards
    if shards == 1 or texts.height < 2:
        return vectors_frame(texts["text_hash"], encoder.encode(texts["text"].to_list()))
    from pipelines.embed.shards import embedding_client, encode_sharded

    # The workers load the encoder this process loaded (a fine-tuned one from its folder).
    cfg = ctx.settings.embed.model_copy(update={"model": str(encoder.path)})
    with embedding_client(ctx.settings.dask, encoder.device) as client:
        vecs = encode_sharded(client, texts["text"].to_list(), cfg, encoder.device, shards,
                              encoder.dim)
    return vectors_frame(texts["text_hash"], vecs)


def _update_interest(ctx: RunContext, history: pl.DataFrame, model: str) -> dict:
    """The interest memory after ``ds`` from the state of the latest earlier day.

    Users with events after that day (on ``ds`` when nights are consecutive; a skipped night's
    users too) move towards today's history vector. With no earlier state (the first run, or a
    new model) every user with a history starts at it.
    """
    from pipelines.embed.interest import starting_state, update_interest

    earlier = [d for d in ctx.lake.days(cat.INTEREST) if d < ctx.ds]
    day = earlier[-1] if earlier else None
    stored = ctx.lake.read(cat.INTEREST, ds=day) if day else None
    prev, since = starting_state(stored, day, model, history.schema["vector"].size)
    if stored is not None and since is None:
        log.warning("interest memory of %s was built with %s, not %s: it starts afresh",
                    day, stored["model"][0], model)
    if since is None:
        today = history.select("user_id", "vector")
    else:
        days = [d for d in ctx.lake.days(cat.CLEAN_EVENTS) if since < d <= ctx.ds]
        active = ctx.read_days(cat.CLEAN_EVENTS, days, columns=["user_id"])["user_id"]
        today = history.filter(pl.col("user_id").is_in(active.unique().implode())).select(
            "user_id", "vector")
    state = update_interest(prev, today, ctx.settings.embed.interest_alpha, ctx.ds)
    ctx.lake.write(cat.INTEREST, state.with_columns(pl.lit(model).alias("model")), ds=ctx.ds)
    return {"users": state.height, "updated": today.height,
            "from": since.isoformat() if since else None}
