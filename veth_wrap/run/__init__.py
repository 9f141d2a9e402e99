"""The only layer that starts processes: the runner; commands, a step as its process and its
dry-run text; the schedule that turns a plan into processes (farside: which end's step makes
a veth; late: where a namespace is added; together: which steps may run at once; fuse and
readback); processes, which runs its waves; transaction, the walker (apply, rollback);
filesteps, done in-process by their kind; the lock."""
