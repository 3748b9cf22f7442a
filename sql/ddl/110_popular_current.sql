-- what to show users the pipeline does not know: the newest published popularity list
create or replace view recs.popular_current as
with latest as (
    select max(ds) as ds from recs.popular_items
)

select p.rank, p.item_id, p.score
from recs.popular_items as p
inner join latest on p.ds = latest.ds;
