-- how often each item is shown in the current lists, and at which average rank
select item_id, count(*) as n_users, avg(rank) as mean_rank
from recs.recommendations_current
group by item_id
order by n_users desc
limit 20;
