"""(Lab, facts) -> steps, with no I/O at all: create, destroy, update and live link changes."""
