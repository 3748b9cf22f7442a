-- a user's current top 10 (replace 'u00042' with the user's id; bind it as a parameter in code)
select rank, item_id, score, reason
from recs.recommendations_current
where user_id = 'u00042'
order by rank
limit 10;
