"""SQL system of record: models, per-process engines, migrations and repositories."""
