"""The read model: SQLAlchemy models, engine factory, writes (used by activities) and reads (API)."""
