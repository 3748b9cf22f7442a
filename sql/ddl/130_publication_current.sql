-- how fresh recommendations_current is and what it comes from: the run that published the newest
-- ds (one row; none before the first publish). A backfill of an older ds never moves it.
create or replace view recs.publication_current as
with newest as (
    select r.ds, r.run_id
    from recs.recommendations as r
    where r.ds = (select max(ds) from recs.recommendations)
    limit 1
)

select
    n.ds,
    p.finished_at as published_at,
    p.model_version,
    split_part(p.model_version, ':', 2) as model,
    p.gate_verdict,
    p.gate_reason,
    n.run_id
from newest as n
inner join recs.pipeline_runs as p on n.run_id = p.run_id;
