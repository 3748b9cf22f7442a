"""Helpers the tests share: workspaces, a local PostgreSQL server, the night fingerprint."""
