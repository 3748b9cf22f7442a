-- one row per run_id; times are UTC
create table if not exists recs.pipeline_runs (
    run_id text primary key,
    ds date not null,
    status text not null,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    model_version text,
    n_users bigint,
    n_rows bigint,
    message text,
    report text
);
