-- each item's most similar available items by the model's item vectors, one set per ds
create table if not exists recs.similar_items (
    ds date not null,
    item_id text not null,
    rank integer not null,
    similar_item_id text not null,
    score double precision not null,
    reason text not null,
    model_version text not null,
    run_id text not null,
    primary key (ds, item_id, rank)
);
