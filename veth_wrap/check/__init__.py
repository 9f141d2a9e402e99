"""Is the lab what was asked, and does it pass traffic: verify, ping, probes, pingall."""
