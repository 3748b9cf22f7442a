-- "more like this" on an item's page: its 10 most similar items with titles (replace 'i001'
-- with the item's id; in code, bind it as a parameter)
with neighbours as (
    select rank, similar_item_id, score, reason
    from recs.similar_items_current
    where item_id = 'i001'
),

final as (
    select s.rank, s.similar_item_id as item_id, i.title, i.category, s.score, s.reason
    from neighbours as s
    left join recs.items_current as i on s.similar_item_id = i.item_id
)

select * from final
order by rank
limit 10;
