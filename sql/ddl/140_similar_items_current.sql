-- "more like this" for item pages: the similar items of the newest published ds
create or replace view recs.similar_items_current as
with latest as (
    select max(ds) as ds from recs.similar_items
)

select s.item_id, s.rank, s.similar_item_id, s.score, s.reason, s.model_version
from recs.similar_items as s
inner join latest on s.ds = latest.ds;
