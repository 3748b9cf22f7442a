-- what every object and column consumers can see means (COMMENT ON: shown by psql's \d+, DuckDB's
-- duckdb_columns(), dbt docs and most SQL clients); applied after the objects, since replacing a
-- view drops its comments. Ids are the pipeline's as validated from the raw logs.
comment on table recs.recommendations is
'Every published top-N list: one row per (ds, user, rank), history kept for [serve] retention_days; a rerun of a ds replaces that ds as a whole.';
comment on column recs.recommendations.ds is 'The run''s logical date: lists computed from the logs up to the end of that day.';
comment on column recs.recommendations.user_id is 'The user the list is for.';
comment on column recs.recommendations.rank is 'Position in the user''s list, 1 = best, contiguous.';
comment on column recs.recommendations.item_id is 'The recommended item (in the catalog, available, not already interacted with).';
comment on column recs.recommendations.score is 'The published model''s score (higher is better), comparable within one model_version only.';
comment on column recs.recommendations.reason is 'A short reason to show next to the item (e.g. similar to <title>, popular now).';
comment on column recs.recommendations.model_version is '<registry version>:<model>: the model version and the model whose lists these are.';
comment on column recs.recommendations.run_id is 'The run that published the row (recs.pipeline_runs).';

comment on table recs.popular_items is
'The popularity list for users the pipeline does not know, one per published ds.';
comment on column recs.popular_items.ds is 'The run''s logical date.';
comment on column recs.popular_items.rank is 'Position in the list, 1 = most popular.';
comment on column recs.popular_items.item_id is 'The item.';
comment on column recs.popular_items.score is 'Its popularity by the variant the evaluation found best.';
comment on column recs.popular_items.run_id is 'The run that published it.';

comment on table recs.pipeline_runs is 'One row per run: its outcome, what it published and why; times are UTC.';
comment on column recs.pipeline_runs.run_id is 'The run (Airflow''s run id, or recs__<ds> for recs run).';
comment on column recs.pipeline_runs.ds is 'The run''s logical date.';
comment on column recs.pipeline_runs.status is 'success (published), failed (nothing published; see message) or late (missed its deadline, no outcome yet).';
comment on column recs.pipeline_runs.started_at is 'When the run''s first task started.';
comment on column recs.pipeline_runs.finished_at is 'When the run published, or failed.';
comment on column recs.pipeline_runs.model_version is '<registry version>:<model> of the published lists (null when nothing was published).';
comment on column recs.pipeline_runs.n_users is 'Users with a published list.';
comment on column recs.pipeline_runs.n_rows is 'Published recommendation rows.';
comment on column recs.pipeline_runs.message is 'published <model>; gate: <reason>, or what failed.';
comment on column recs.pipeline_runs.report is 'Path of the run''s HTML report in the lake.';
comment on column recs.pipeline_runs.gate_verdict is 'The quality gate on the candidate: passed, refused (a baseline was published), forced or not evaluated.';
comment on column recs.pipeline_runs.gate_reason is 'Why, with the numbers.';

comment on table recs.model_metrics is 'Offline metrics of the candidate and every baseline on the holdout before ds.';
comment on column recs.model_metrics.run_id is 'The run that evaluated them.';
comment on column recs.model_metrics.ds is 'The run''s logical date.';
comment on column recs.model_metrics.model is 'The model (ranker, ranker_explore or a baseline).';
comment on column recs.model_metrics.metric is 'The metric (ndcg, recall, precision, map, hit, coverage, cold_recall, lift_<gate metric>, ...).';
comment on column recs.model_metrics.k is 'The list length it is measured at.';
comment on column recs.model_metrics.value is 'Its value.';

comment on table recs.dq_results is 'One row per data-quality expectation and day-level rule of each run.';
comment on column recs.dq_results.run_id is 'The run that validated the day.';
comment on column recs.dq_results.ds is 'The validated day.';
comment on column recs.dq_results.dataset is 'events, items or day.';
comment on column recs.dq_results.expectation is 'The expectation or rule.';
comment on column recs.dq_results.success is 'Whether it held.';
comment on column recs.dq_results.unexpected_count is 'Rows that failed it.';
comment on column recs.dq_results.details is 'Its details (JSON).';

comment on table recs.items is 'The catalog as of each published ds, to show titles next to item ids.';
comment on column recs.items.ds is 'The run''s logical date.';
comment on column recs.items.item_id is 'The item.';
comment on column recs.items.title is 'Its title.';
comment on column recs.items.category is 'Its category.';
comment on column recs.items.available is 'Whether it could be recommended on that day.';

comment on table recs.similar_items is
'Each item''s most similar available items by the model''s item vectors, one set per published ds (retention as recommendations).';
comment on column recs.similar_items.ds is 'The run''s logical date.';
comment on column recs.similar_items.item_id is 'The item whose page shows them.';
comment on column recs.similar_items.rank is 'Position, 1 = most similar, contiguous.';
comment on column recs.similar_items.similar_item_id is 'A similar item (in the catalog, available, never item_id itself).';
comment on column recs.similar_items.score is 'Cosine of the two items'' vectors (higher is more similar).';
comment on column recs.similar_items.reason is 'liked by the same users, or similar description when one of them has no interactions yet.';
comment on column recs.similar_items.model_version is 'The registry version whose item vectors these are.';
comment on column recs.similar_items.run_id is 'The run that published them.';

comment on view recs.recommendations_current is
'The lists of the newest published ds: what to show each user now. A backfill of an older ds never moves it backwards.';
comment on column recs.recommendations_current.ds is 'The newest published ds (recs.publication_current says when and by which model).';
comment on column recs.recommendations_current.user_id is 'The user the list is for.';
comment on column recs.recommendations_current.rank is 'Position in the user''s list, 1 = best.';
comment on column recs.recommendations_current.item_id is 'The recommended item.';
comment on column recs.recommendations_current.score is 'The published model''s score (higher is better).';
comment on column recs.recommendations_current.reason is 'A short reason to show next to the item.';
comment on column recs.recommendations_current.model_version is '<registry version>:<model> whose lists these are.';
comment on column recs.recommendations_current.run_id is 'The run that published them.';

comment on view recs.recommendations_history is 'Every published ds still inside the retention window.';
comment on column recs.recommendations_history.ds is 'The run''s logical date.';
comment on column recs.recommendations_history.user_id is 'The user the list is for.';
comment on column recs.recommendations_history.rank is 'Position in the user''s list, 1 = best.';
comment on column recs.recommendations_history.item_id is 'The recommended item.';
comment on column recs.recommendations_history.score is 'The published model''s score (higher is better).';
comment on column recs.recommendations_history.reason is 'A short reason to show next to the item.';
comment on column recs.recommendations_history.model_version is '<registry version>:<model> whose lists these are.';
comment on column recs.recommendations_history.run_id is 'The run that published them.';

comment on view recs.popular_current is 'What to show users the pipeline does not know: the newest published popularity list.';
comment on column recs.popular_current.rank is 'Position in the list, 1 = most popular.';
comment on column recs.popular_current.item_id is 'The item.';
comment on column recs.popular_current.score is 'Its popularity.';

comment on view recs.items_current is 'The catalog of the newest published ds (the one recommendations_current shows).';
comment on column recs.items_current.item_id is 'The item.';
comment on column recs.items_current.title is 'Its title.';
comment on column recs.items_current.category is 'Its category.';
comment on column recs.items_current.available is 'Whether it could be recommended on that day.';

comment on view recs.publication_current is
'How fresh recommendations_current is: the run that published its ds, one row (none before the first publish).';
comment on column recs.publication_current.ds is 'The ds recommendations_current shows.';
comment on column recs.publication_current.published_at is 'When it was published (UTC).';
comment on column recs.publication_current.model_version is '<registry version>:<model> of the published lists.';
comment on column recs.publication_current.model is 'The published model: ranker, ranker_explore or the baseline that beat it.';
comment on column recs.publication_current.gate_verdict is 'The quality gate on the candidate: passed, refused (a baseline was published), forced or not evaluated.';
comment on column recs.publication_current.gate_reason is 'Why, with the numbers.';
comment on column recs.publication_current.run_id is 'The run that published it (recs.pipeline_runs, for operators).';

comment on view recs.similar_items_current is '"More like this" for item pages: the similar items of the newest published ds.';
comment on column recs.similar_items_current.item_id is 'The item whose page shows them.';
comment on column recs.similar_items_current.rank is 'Position, 1 = most similar.';
comment on column recs.similar_items_current.similar_item_id is 'A similar item (available, never item_id itself).';
comment on column recs.similar_items_current.score is 'Cosine of the two items'' vectors (higher is more similar).';
comment on column recs.similar_items_current.reason is 'liked by the same users, or similar description when one of them has no interactions yet.';
comment on column recs.similar_items_current.model_version is 'The registry version whose item vectors these are.';
