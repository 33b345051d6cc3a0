"""The SQLite store, the only package that speaks SQL: migrations, one module per table."""
