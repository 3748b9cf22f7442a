"""Validation of the raw logs: file readers, row verdicts, the Great Expectations suites and the
day-level rules."""
