-- the catalog of the newest published ds (the one recommendations_current shows)
create or replace view recs.items_current as
with latest as (
    select max(ds) as ds from recs.items
)

select i.item_id, i.title, i.category, i.available
from recs.items as i
inner join latest on i.ds = latest.ds;
