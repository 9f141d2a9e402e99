"""Software in the lab (part of the api layer): services, and the processes destroy stops.

A service is a program started inside a lab's namespace in a cgroup of its own (service),
found again from the kernel alone (inlab); destroy ends every process in the namespaces it
deletes, whoever started it, and every service cgroup of what goes (teardown).
"""
