"""Workflow definitions and the types that cross the workflow boundary. Deterministic, no I/O."""
