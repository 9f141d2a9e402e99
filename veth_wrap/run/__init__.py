"""The only layer that starts processes: the runner; commands, a step as its process and its
dry-run text; the schedule that turns a plan into processes (with fuse and readback);
processes, which runs its waves; the walker (apply, rollback); files done in-process by
their kind; the lock."""
