-- the run report (HTML, in the lake) of each run; added after the table's first release
alter table recs.pipeline_runs add column if not exists report text;
