-- one row per data-quality check of a run
create table if not exists recs.dq_results (
    run_id text not null,
    ds date not null,
    dataset text not null,
    expectation text not null,
    success boolean not null,
    unexpected_count bigint not null,
    details text,
    primary key (run_id, dataset, expectation)
);
