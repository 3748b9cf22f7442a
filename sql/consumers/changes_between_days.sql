-- what changed between the two newest published days: per user, how many of the top 10 are new
-- today and how many dropped out (swap the two days in `days` for any pair still retained)
with published as (
    select distinct ds from recs.recommendations_history
),

days as (
    select max(ds) as today,
           (select max(p.ds) from published as p where p.ds < max(published.ds)) as before
    from published
),

today as (
    select h.user_id, h.item_id from recs.recommendations_history as h
    inner join days on h.ds = days.today
    where h.rank <= 10
),

before as (
    select h.user_id, h.item_id from recs.recommendations_history as h
    inner join days on h.ds = days.before
    where h.rank <= 10
),

added as (
    select user_id, count(*) as n_added from (
        select user_id, item_id from today except select user_id, item_id from before
    ) as a
    group by user_id
),

dropped as (
    select user_id, count(*) as n_dropped from (
        select user_id, item_id from before except select user_id, item_id from today
    ) as d
    group by user_id
),

final as (
    select coalesce(a.user_id, d.user_id) as user_id,
           coalesce(a.n_added, 0) as n_added,
           coalesce(d.n_dropped, 0) as n_dropped
    from added as a
    full outer join dropped as d on a.user_id = d.user_id
)

select * from final
order by n_added desc, user_id
limit 20;
