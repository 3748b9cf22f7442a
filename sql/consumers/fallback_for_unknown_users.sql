-- personal list when there is one, else the popular list
with personal as (
    select rank, item_id, score from recs.recommendations_current where user_id = 'new-user-1'
)

select rank, item_id, score from personal
union all
select rank, item_id, score from recs.popular_current
where not exists (select 1 from personal)
order by rank
limit 10;
