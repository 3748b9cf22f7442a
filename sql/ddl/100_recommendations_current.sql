-- the newest published ds; a backfill of an older ds never moves it backwards
create or replace view recs.recommendations_current as
with latest as (
    select max(ds) as ds from recs.recommendations
)

select r.ds, r.user_id, r.rank, r.item_id, r.score, r.reason, r.model_version, r.run_id
from recs.recommendations as r
inner join latest on r.ds = latest.ds;
