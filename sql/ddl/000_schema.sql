create schema if not exists recs;
