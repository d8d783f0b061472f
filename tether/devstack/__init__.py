"""The dev stack: ``tether dev``'s supervisor, the child processes it and the tests start, a local
Temporal dev server tuned as both run it, and the ``Stack`` of runner, worker and API processes
that the tests and ``bench/`` share."""
