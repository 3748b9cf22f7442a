create schema if not exists recs;
-- where a run's rows are loaded and checked before publish moves them into recs
create schema if not exists recs_staging;
