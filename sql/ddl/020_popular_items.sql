-- the fallback list for users the pipeline does not know, one list per ds
create table if not exists recs.popular_items (
    ds date not null,
    rank integer not null,
    item_id text not null,
    score double precision not null,
    run_id text not null,
    primary key (ds, rank)
);
