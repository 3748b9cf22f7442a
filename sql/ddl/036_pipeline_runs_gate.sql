-- the quality gate's verdict on the run's candidate and its reason; added after the table's
-- first release (null for runs before it and for runs that did not publish)
alter table recs.pipeline_runs add column if not exists gate_verdict text;
alter table recs.pipeline_runs add column if not exists gate_reason text;
