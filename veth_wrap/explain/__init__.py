"""Why traffic does not pass: diagnose and doctor, from evidence read in the kernel."""
