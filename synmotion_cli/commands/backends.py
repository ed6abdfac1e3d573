"""`synmotion backends list`: which backends are installed and what they can do."""

from __future__ import annotations

import typer

from ._common import JSON, out

app = typer.Typer(
    help="""Backends: the plugins that hold a model family and the method (entry point group `synmotion.backends`).

[bold]Examples[/bold]

  synmotion backends list

  SYNMOTION_BACKEND=hunyuan synmotion learn clap ./clips/
""",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command("list")
def list_(json_out: bool = JSON) -> None:
    """List installed backends, their capabilities and which one `learn`/`gen` use.

    Example: synmotion backends list --json
    """
    from ..plugins import load_backends
    from ..selection import default_backend_name

    o = out(json_out)
    chosen, why = default_backend_name()
    rows = []
    for plugin in load_backends():
        obj = plugin.obj
        rows.append({
            "name": plugin.name,
            "distribution": plugin.distribution,
            "capabilities": sorted(getattr(obj, "capabilities", ())) if obj else [],
            "description": getattr(obj, "description", "") if obj else "",
            "default": plugin.name == chosen,
            "error": plugin.error,
        })

    def render(console):
        from rich.markup import escape
        from rich.table import Table

        if not rows:
            console.print("no backends installed: pip install -e backends/hunyuan (or another synmotion backend)")
            return
        table = Table(box=None, header_style="bold")
        for col in ("NAME", "CAPABILITIES", "DISTRIBUTION", "DESCRIPTION"):
            table.add_column(col)
        for r in rows:
            name = r["name"] + (" *" if r["default"] else "")
            # Plugin text is shown as written, never read as markup.
            desc = f"[red]failed to load: {escape(r['error'])}[/red]" if r["error"] else escape(r["description"])
            table.add_row(escape(name), ",".join(r["capabilities"]) or "-", escape(r["distribution"]), desc)
        console.print(table)
        if chosen:
            console.print(f"[dim]* used by default ({why})[/dim]")

    o.emit(rows, render)
