"""The dev stack: ``tether dev``'s supervisor, the child processes it and the tests start, and a
local Temporal dev server tuned as both run it."""
