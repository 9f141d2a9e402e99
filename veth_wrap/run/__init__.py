"""The only layer that starts processes: the runner; the schedule that turns a plan into
processes (with fuse and readback); processes, which runs its waves; transaction, the
walker (apply, rollback); filesteps, done in-process by their kind; the lock."""
