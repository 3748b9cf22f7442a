-- how fresh the current lists are and which model made them: alert when hours_old passes a day
select
    ds,
    published_at,
    model,
    gate_verdict,
    extract(epoch from (current_timestamp - published_at)) / 3600.0 as hours_old
from recs.publication_current;
