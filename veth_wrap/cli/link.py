"""CLI commands on live labs: `link set` (impairments, MTU, MAC) and `exec NS -- CMD`."""

from __future__ import annotations

from typing import List, Optional

import typer

from veth_wrap.cli.app import guarded, require_root
from veth_wrap.cli.common import lab_option
from veth_wrap.cli.complete import complete_ifname, complete_namespace
from veth_wrap.errors import (
    UsageError,
)

link_app = typer.Typer(help="Change a live link: delay, jitter, loss, rate, MTU, MAC; flap it.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach `link set`, `link flap` and `exec`."""
    from veth_wrap.cli.faults import flap

    link_app.command("set")(link_set)
    link_app.command("flap")(flap)
    app.add_typer(link_app, name="link")
    app.command("exec", context_settings={"allow_extra_args": True,
                                          "ignore_unknown_options": True})(exec_command)


@guarded
def link_set(
    namespace: Optional[str] = typer.Argument(None, help="Namespace of the interface.",
                                              autocompletion=complete_namespace),
    interface: Optional[str] = typer.Argument(None, help="A veth end vethwrap made.",
                                              autocompletion=complete_ifname),
    lab: Optional[str] = lab_option(),
    delay: Optional[str] = typer.Option(None, "--delay", help="Added delay on egress, e.g. 10ms."),
    jitter: Optional[str] = typer.Option(None, "--jitter", help="Delay variation, e.g. 2ms."),
    loss: Optional[str] = typer.Option(
        None, "--loss", help="Random loss on egress, e.g. 1% (a BPF filter without netem)."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Egress rate, e.g. 10mbit."),
    mtu: Optional[int] = typer.Option(None, "--mtu", help="MTU of this end and its peer."),
    mac: Optional[str] = typer.Option(None, "--mac", help="MAC address of this end."),
    clear: bool = typer.Option(False, "--clear", help="Remove the impairments first."),
    for_: Optional[str] = typer.Option(
        None, "--for", help="Only for this long (e.g. 30s): then the end's earlier "
        "impairments come back, done by a service of the lab."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                 help="Print the commands instead of running them."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Change one end of a live link, or every end of a lab, in place; show the result."""
    from veth_wrap import api
    from veth_wrap.cli.output import emit_json, emit_script, out
    from veth_wrap.model.linkopts import impairments_text, link_opts
    from veth_wrap.run.transaction import script

    ends = _ends(namespace, interface, lab)
    opts = link_opts(delay, jitter, loss, rate, mtu, mac)
    if opts is None and not clear:
        raise UsageError("nothing to change", "give --delay, --loss, --rate, --mtu, --mac or "
                         "--clear")
    if lab is not None and opts is not None and opts.mac:
        raise UsageError("--mac sets one end's address, not a whole lab's",
                         "name the namespace and interface instead of --lab")
    require_root()  # even the dry run reads the ends as the kernel holds them
    if for_ is not None and not dry_run:
        from veth_wrap.cli.faults import timed

        timed(namespace, interface, lab, opts, clear, for_, json_out)
        return
    if dry_run:
        plan = api.link_plan(namespace, interface, opts, clear, lab=lab)
        emit_script(script(plan, f"vethwrap link set {' '.join(ends)}"))
        return
    results = api.link_set(namespace, interface, opts, clear, lab=lab)
    if json_out:
        emit_json(results[0] if lab is None else {"lab": lab, "ends": results})
        return
    for result in results:
        shown = impairments_text(result["impairments"])
        out().print(f"{result['namespace']}:{result['interface']}: mtu {result['mtu']}, "
                    f"mac {result['mac']}, impairments: {shown or 'none'}")


def _ends(namespace: Optional[str], interface: Optional[str], lab: Optional[str]) -> list[str]:
    """The words naming what changes: NS IFACE, or --lab NAME; validated."""
    from veth_wrap.model import names

    if lab is not None:
        if namespace is not None:
            raise UsageError("give NAMESPACE INTERFACE or --lab NAME, not both",
                             "e.g. 'vethwrap link set --lab LAB --delay 10ms'")
        return ["--lab", names.check_lab(lab)]
    if namespace is None or interface is None:
        raise UsageError("name the namespace and the interface, or give --lab NAME",
                         "e.g. 'vethwrap link set ns0 vw-ns1 --delay 10ms'")
    return [names.check_netns(namespace), names.check_ifname(interface)]


@guarded
def exec_command(
    ctx: typer.Context,
    namespace: str = typer.Argument(..., help="Namespace to run the command in."),
) -> Optional[int]:
    """Run a command inside a namespace (like `ip netns exec`); its exit status is returned."""
    import shutil

    from veth_wrap import api
    from veth_wrap.cli.output import error_line
    from veth_wrap.errors import ExitStatus
    from veth_wrap.model import names
    from veth_wrap.run.runner import exec_replace

    names.check_netns(namespace)
    argv: List[str] = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError("no command given", f"e.g. vethwrap exec {namespace} -- ip addr")
    require_root()
    full = api.exec_argv(namespace, argv)
    if shutil.which(argv[0]) is None:
        error_line(f"{argv[0]}: command not found")
        return ExitStatus.NOT_FOUND
    exec_replace(full)  # replaces this process: stdio and the exit status pass straight through
