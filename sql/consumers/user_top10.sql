-- a user's current top 10 with titles (replace 'u0000' with the user's id; in code, bind it as a
-- parameter rather than pasting it into the text)
with user_recs as (
    select rank, item_id, score, reason
    from recs.recommendations_current
    where user_id = 'u0000'
),

final as (
    select r.rank, r.item_id, i.title, i.category, r.score, r.reason
    from user_recs as r
    left join recs.items_current as i on r.item_id = i.item_id
)

select * from final
order by rank
limit 10;
