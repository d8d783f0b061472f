"""The read model: SQLAlchemy models, engine factory, writes (by activities), reads (by the API)."""
