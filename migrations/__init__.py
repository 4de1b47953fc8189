"""Alembic environment and revisions for PixSim's schema (run through ``core.db.migrate``)."""
