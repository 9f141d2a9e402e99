"""What verification asks to read back once a plan ran (run/readback carries it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reads:
    """Links and addresses by namespace, routes by hop: what verification reads first."""

    spaces: tuple[str, ...] = ()
    hops: tuple[tuple[str, str], ...] = ()  # (source namespace, address)
