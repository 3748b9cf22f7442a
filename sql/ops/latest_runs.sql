-- the latest runs and their outcome
select run_id, ds, status, started_at, finished_at, model_version, n_users, n_rows, message
from recs.pipeline_runs
order by ds desc, started_at desc
limit 10;
