-- read-only access for SQL consumers: the views and nothing else. Grant it to login roles:
--   create role dashboards login password '...' in role recs_reader;
-- (views run with their owner's rights, so the role needs no privilege on the tables)
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'recs_reader') then
        create role recs_reader nologin;
    end if;
end
$$;
grant usage on schema recs to recs_reader;
grant select on recs.recommendations_current, recs.recommendations_history,
    recs.popular_current, recs.items_current, recs.publication_current,
    recs.similar_items_current to recs_reader;
