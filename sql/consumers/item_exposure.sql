-- how often each item is shown in the current lists: users reached, share of all users with a
-- list, and the average rank it is shown at
with shown as (
    select item_id, count(*) as n_users, avg(rank) as mean_rank
    from recs.recommendations_current
    group by item_id
),

audience as (
    select count(distinct user_id) as n_users from recs.recommendations_current
),

final as (
    select s.item_id, i.title, s.n_users,
           round(cast(s.n_users as numeric) / a.n_users, 4) as share_of_users,
           round(cast(s.mean_rank as numeric), 2) as mean_rank
    from shown as s
    cross join audience as a
    left join recs.items_current as i on s.item_id = i.item_id
)

select * from final
order by n_users desc, item_id
limit 20;
