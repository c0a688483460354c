"""Database access: models, engines and sessions, schema revisions, and the row reader."""
