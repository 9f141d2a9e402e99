"""Allow `python -m veth_wrap`."""

from .cli import run

run()
