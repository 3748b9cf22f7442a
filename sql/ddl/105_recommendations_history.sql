-- every published ds still inside the retention window
create or replace view recs.recommendations_history as
select ds, user_id, rank, item_id, score, reason, model_version, run_id
from recs.recommendations;
