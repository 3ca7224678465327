"""Prometheus metrics: what workers count as jobs finish, and what the ledger and Redis hold."""
