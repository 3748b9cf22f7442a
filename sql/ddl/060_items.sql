-- the catalog as of each published ds, so consumers can show titles next to item ids
create table if not exists recs.items (
    ds date not null,
    item_id text not null,
    title text,
    category text,
    available boolean not null,
    primary key (ds, item_id)
);
