"""How `--help` reads: commands in panels by what they act on, usage lines in click's convention.

Plain click formatting, not typer's rich panels, which import rich's markdown and pygments at
start-up; the panels are typer's own `rich_help_panel` attribute, drawn here as click sections.
"""

from __future__ import annotations

import typer.core

# the panel of each command; one missing from here is listed under "Commands"
PANELS = {
    "create": "Labs", "destroy": "Labs", "show": "Labs",
    "ping": "Traffic", "pingall": "Traffic", "link": "Traffic", "capture": "Traffic",
    "partition": "Traffic", "heal": "Traffic", "faults": "Traffic",
    "run": "Software", "exec": "Software", "ps": "Software", "stop": "Software",
    "restart": "Software", "logs": "Software",
    "diagnose": "Explain", "doctor": "Explain",
    "up": "Files", "down": "Files", "validate": "Files", "graph": "Files",
}
ORDER = ["Labs", "Traffic", "Software", "Explain", "Files"]
TRAILING = {"run", "exec"}  # commands that run the command line given after --
METAVARS = {"namespace": "NS", "namespaces": "NS"}


def usage_word(param) -> str:
    """An argument in a usage line: NAME, [NAME] when optional, NAME... when repeated."""
    word = METAVARS.get(param.name, (param.name or "").upper())
    if param.nargs != 1:
        word += "..."
    return word if param.required else f"[{word}]"


class Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments, and the command line it runs."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [usage_word(param) for param in self.get_params(ctx)
                   if param.param_type_name == "argument"]
        if self.name in TRAILING:
            pieces.append("-- CMD [ARG]...")
        return pieces


class Group(typer.core.TyperGroup):
    """The top-level command: its commands listed in panels."""

    def format_commands(self, ctx, formatter) -> None:
        shown = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, cmd) for name, cmd in shown if cmd is not None and not cmd.hidden]
        if not shown:
            return
        width = max(len(name) for name, _ in shown)
        panels: dict[str, list[tuple[str, str]]] = {}
        for name, cmd in shown:  # one width for every panel, so that they line up
            panel = getattr(cmd, "rich_help_panel", None) or "Commands"
            help_text = cmd.get_short_help_str(formatter.width - 6 - width)
            panels.setdefault(panel, []).append((name.ljust(width), help_text))
        for panel in sorted(panels, key=lambda p: ORDER.index(p) if p in ORDER else len(ORDER)):
            with formatter.section(panel):
                formatter.write_dl(panels[panel])


def arrange(app: typer.Typer) -> None:
    """Give every registered command its panel and the usage line above."""
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.cls = Command if info.cls is typer.core.TyperCommand else info.cls
        info.rich_help_panel = info.rich_help_panel or PANELS.get(name)
    for group in app.registered_groups:
        group.rich_help_panel = group.rich_help_panel or PANELS.get(group.name)
        for info in group.typer_instance.registered_commands:
            info.cls = Command if info.cls is typer.core.TyperCommand else info.cls
