-- one row per (ds, user, rank), one partition per ds: publish attaches a run's loaded and
-- indexed partition in one transaction, and retention drops whole partitions
create table if not exists recs.recommendations (
    ds date not null,
    user_id text not null,
    rank integer not null,
    item_id text not null,
    score double precision not null,
    reason text,
    model_version text not null,
    run_id text not null,
    primary key (ds, user_id, rank)
) partition by list (ds);
