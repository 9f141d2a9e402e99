"""Allow `python -m veth_wrap`."""

from veth_wrap.cli.app import run

run()
