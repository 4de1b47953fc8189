"""Database layer: typed SQLAlchemy models, engine set-up, the embedded server and migrations."""
