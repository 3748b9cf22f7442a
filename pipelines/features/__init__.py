"""Feature aggregation: one definition, run by polars, Spark or Dask, built day by day."""
