"""The only layer that starts processes: the runner, the walker (apply, rollback), the lock."""
