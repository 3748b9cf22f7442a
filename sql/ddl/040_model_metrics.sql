-- offline metrics of the candidate and each baseline on the temporal holdout before ds
create table if not exists recs.model_metrics (
    run_id text not null,
    ds date not null,
    model text not null,
    metric text not null,
    k integer not null,
    value double precision not null,
    primary key (run_id, model, metric, k)
);
