"""Serving: blocked top-N scoring, diversity re-ranking, reasons and user shards."""
