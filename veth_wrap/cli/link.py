"""CLI commands on live labs: `link set` (impairments, MTU, MAC) and `exec NS -- CMD`."""

from __future__ import annotations

from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.errors import (
    CommandFailed,
    PreflightError,
    UsageError,
    VerificationFailed,
    VethwrapError,
)

link_app = typer.Typer(help="Change a live link: delay, jitter, loss, rate, MTU, MAC.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach `link set` and `exec`."""
    link_app.command("set")(link_set)
    app.add_typer(link_app, name="link")
    app.command("exec", context_settings={"allow_extra_args": True,
                                          "ignore_unknown_options": True})(exec_command)


def no_netem(error: CommandFailed) -> VethwrapError:
    """A clearer error when the kernel lacks a qdisc or filter that link options need."""
    from veth_wrap.model.linkopts import NO_NETEM

    if NO_NETEM not in error.stderr and "Unknown filter" not in error.stderr:
        return error
    if "netem" not in (error.failed_line or " ".join(error.argv)):
        return PreflightError("this kernel lacks clsact or cls_bpf (CONFIG_NET_SCH_INGRESS, "
                              "CONFIG_NET_CLS_BPF), which --loss needs without sch_netem",
                              "use a kernel with either, or drop --loss; --rate uses tbf")
    return PreflightError("this kernel has no netem qdisc (sch_netem), needed for --delay and "
                          "--jitter", "load it: modprobe sch_netem (Debian/Ubuntu: package "
                          "linux-modules-extra-$(uname -r)); --loss and --rate work without it")


def impaired_failure(failure: VerificationFailed) -> VerificationFailed:
    """Say that impairments may be why the verification pings failed."""
    failure.hint = ("the link options (--loss, --delay) may drop or outlast the check's pings: "
                    "create with --no-verify to skip it; " + failure.hint)
    return failure


@guarded
def link_set(
    namespace: str = typer.Argument(..., help="Namespace of the interface."),
    interface: str = typer.Argument(..., help="A veth end vethwrap made."),
    delay: Optional[str] = typer.Option(None, "--delay", help="Added delay on egress, e.g. 10ms."),
    jitter: Optional[str] = typer.Option(None, "--jitter", help="Delay variation, e.g. 2ms."),
    loss: Optional[str] = typer.Option(
        None, "--loss", help="Random loss on egress, e.g. 1% (a BPF filter without netem)."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Egress rate, e.g. 10mbit."),
    mtu: Optional[int] = typer.Option(None, "--mtu", help="MTU of this end and its peer."),
    mac: Optional[str] = typer.Option(None, "--mac", help="MAC address of this end."),
    clear: bool = typer.Option(False, "--clear", help="Remove the impairments first."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Change one end of a live link in place (the link is not rebuilt); show the result."""
    from veth_wrap.cli.output import emit_json, out
    from veth_wrap.kernel import tcread as linklive
    from veth_wrap.model import names
    from veth_wrap.model.linkopts import impairments_text, link_opts

    names.check_netns(namespace)
    names.check_ifname(interface)
    opts = link_opts(delay, jitter, loss, rate, mtu, mac)
    if opts is None and not clear:
        raise UsageError("nothing to change", "give --delay, --loss, --rate, --mtu, --mac or "
                         "--clear")
    require_root()
    try:
        result = linklive.change(namespace, interface, opts, clear)
    except CommandFailed as exc:
        raise no_netem(exc) from None
    if json_out:
        emit_json(result)
    else:
        shown = impairments_text(result["impairments"])
        out().print(f"{namespace}:{interface}: mtu {result['mtu']}, mac {result['mac']}, "
                    f"impairments: {shown or 'none'}")


@guarded
def exec_command(
    ctx: typer.Context,
    namespace: str = typer.Argument(..., help="Namespace to run the command in."),
) -> None:
    """Run a command inside a namespace (like `ip netns exec`); its exit status is returned."""
    from veth_wrap.kernel import tcread as linklive
    from veth_wrap.model import names

    names.check_netns(namespace)
    argv: List[str] = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError("no command given", f"e.g. vethwrap exec {namespace} -- ip addr")
    require_root()
    raise typer.Exit(linklive.run_in(namespace, argv))
