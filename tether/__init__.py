"""Glue shared by every Tether process: settings, the Temporal client factory, IDs, the CLI."""
