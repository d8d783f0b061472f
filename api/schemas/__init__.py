"""The HTTP API's public bodies: ``…Create`` / ``…Update`` in, ``…Public`` out.

A ``…Public`` schema lists its fields itself and is built from a store read with
``Schema.of(record)``, which takes exactly those fields: the workflow's bookkeeping
(projection versions, attempt counters, the agent's own session ID) never reaches an answer,
and a field added to a record stays internal until a public schema names it.
"""
