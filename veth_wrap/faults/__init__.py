"""Faults on demand for the software in a lab: partitions, flaps, timed impairments, timelines.

partition  place and heal partitions (nftables tables in the members' namespaces)
agents     what fault services do: flap a link, restore a link's settings on time
timeline   a list of timed faults run by one service of the lab, logged as JSON lines
"""
