"""`synmotion packs …`: the local registry of motion packs (and read-only plugin sources)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ExitCode
from ._common import JSON, YES, confirm, human_size, open_store, out

app = typer.Typer(
    help="""Manage motion packs: the local registry that `learn` writes and `gen` reads.

[bold]Examples[/bold]

  synmotion packs list

  synmotion packs show clap

  synmotion packs export clap clap.smpack  [dim]# one file to share[/dim]

  synmotion packs import clap.smpack

  synmotion packs verify                   [dim]# exit 4 names bad packs[/dim]

  synmotion packs rm clap:v2 --yes
""",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _summary(ref) -> dict:
    from .. import variants

    m = ref.manifest
    motion = m.get("motion") or {}
    base = m.get("base") or {}
    return {
        "name": ref.full_name,
        "digest": ref.digest,
        "source": ref.source,
        "motion": motion.get("name"),
        "variants": variants.of(m),
        "base": base.get("id"),
        "size": ref.size,
        "created": m.get("created"),
    }


def _sources(o) -> list:
    from ..store import plugin_sources

    sources, problems = plugin_sources()
    for name, problem in problems:
        o.warn(f"pack source {name!r} is unusable: {problem}")
    return sources


def _plugin_packs(o) -> list:
    refs = []
    for source in _sources(o):
        try:
            refs.extend(source.list())
        except Exception as e:  # a third-party source may fail in any way; it must not break the listing
            o.warn(f"pack source {source.name!r} failed to list packs: {e}")
    return refs


def find_pack(store, ref: str, o=None):
    """Resolve ``ref`` in the local store, or as ``SOURCE/NAME`` in a plugin pack source.

    Returns the pack and a callable giving its files (pack-internal name -> readable path).
    """
    from ..errors import NotFoundError
    from ..store import find_pack as find_in

    if "/" in ref:
        source_name, _, inner = ref.partition("/")
        for source in _sources(o or out()):
            if source.name == source_name:
                pack = find_in(source.list(), inner)
                return pack, (lambda: source.files(pack))
        raise NotFoundError(f"no pack source named {source_name!r}", hint="see `synmotion packs list`")
    pack = store.resolve(ref)
    return pack, (lambda: store.files(pack))


@app.command("list")
def list_(json_out: bool = JSON) -> None:
    """List installed packs and the packs that plugin sources offer.

    Example: synmotion packs list --json
    """
    o = out(json_out)
    store = open_store()
    refs = store.list() + _plugin_packs(o)
    rows = [_summary(r) for r in refs]
    for path, reason in store.list_broken():
        o.warn(f"unreadable manifest {path}: {reason} (see `synmotion packs verify`)")

    def render(console):
        from rich.table import Table

        if not rows:
            console.print("no packs yet: make one with `synmotion learn MOTION CLIPS`")
            return
        from rich.markup import escape

        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("NAME", "DIGEST", "MOTION", "VARIANTS", "BASE", "SIZE", "CREATED", "SOURCE"):
            table.add_column(col, no_wrap=col in ("NAME", "DIGEST", "SIZE"), overflow="fold")
        for r in rows:
            base = r["base"] or "-"
            cells = (r["name"], r["digest"][:12], r["motion"] or "-", ",".join(r["variants"]) or "-",
                     base if len(base) <= 40 else "…" + base[-39:], human_size(r["size"]),
                     (r["created"] or "-")[:10], r["source"])
            table.add_row(*map(escape, cells))  # manifest text is shown as written, never read as markup
        console.print(table)

    o.emit(rows, render)


@app.command("show")
def show(ref: str = typer.Argument(..., help="Pack name, name:tag, digest prefix or SOURCE/NAME."),
         json_out: bool = JSON) -> None:
    """Show a pack's manifest: motion, trigger words, base, variants, training data, metrics.

    Example: synmotion packs show clap
    """
    from .. import variants

    o = out(json_out)
    store = open_store()
    pack, _ = find_pack(store, ref, o)
    data = {"name": pack.full_name, "digest": pack.digest, "source": pack.source,
            "variants": {v: variants.base_id(pack.manifest, v) for v in variants.of(pack.manifest)},
            "manifest": pack.manifest}

    def render(console):
        def line(text: str) -> None:  # manifest text is shown as written, never read as markup
            console.print(text, markup=False, highlight=False)

        m = pack.manifest
        motion = m.get("motion") or {}
        console.print(f"[bold]{pack.full_name}[/bold]  sha256:{pack.digest}")
        line(f"motion:    {motion.get('name', '-')}  (trigger words: {', '.join(motion.get('trigger_words', [])) or '-'})")
        base = m.get("base") or {}
        line(f"base:      {base.get('id', '-')}" + (f"  [{base.get('fingerprint')}]" if base.get("fingerprint") else ""))
        line(f"backend:   {m.get('backend', '-')}")
        kinds = data["variants"]
        line(f"variants:  {', '.join(kinds) or '-'}"
             + ("" if "i2v" in kinds else "  (no i2v: `gen --image` needs `learn --i2v`)"))
        for v, base_id in kinds.items():
            line(f"  {v}: base {base_id or '-'}")
        line(f"created:   {m.get('created', '-')}  by synmotion {m.get('tool_version', '?')}")
        for key in ("data", "metrics", "timings", "config"):
            if m.get(key):
                line(f"{key}:")
                for k, v in m[key].items():
                    line(f"  {k}: {v}")
        line("files:")
        for name, info in sorted(m.get("files", {}).items()):
            line(f"  {name}  {human_size(info['size'])}  {info['digest'][:19]}")

    o.emit(data, render)


@app.command("rm")
def rm(refs: List[str] = typer.Argument(..., help="Packs to remove (name, name:tag or digest prefix)."),
       yes: bool = YES, json_out: bool = JSON) -> None:
    """Remove packs. Blobs still used by another pack are kept (reference counting).

    Example: synmotion packs rm clap:v2 --yes
    """
    o = out(json_out)
    store = open_store()
    packs = [store.resolve(r) for r in refs]  # resolve all first: a typo removes nothing
    confirm(f"Remove {', '.join(p.full_name for p in packs)}?", yes)
    removed = []
    for p in packs:
        pack, freed, freed_bytes = store.remove(p.full_name)
        removed.append({"name": pack.full_name, "digest": pack.digest, "freed_blobs": len(freed), "freed_bytes": freed_bytes})
        o.info(f"removed {pack.full_name} ({human_size(freed_bytes)} freed)")
    o.emit(removed, lambda console: None)


@app.command("verify")
def verify(refs: Optional[List[str]] = typer.Argument(None, help="Packs to check (default: all)."),
           json_out: bool = JSON) -> None:
    """Re-hash every blob of every pack. Exit code 4 if any pack is damaged, naming each.

    Example: synmotion packs verify
    """
    o = out(json_out)
    store = open_store()
    results = store.verify(list(refs) if refs else None)
    rows = [{"name": r.ref_name, "digest": r.digest, "ok": r.ok, "problems": r.problems} for r in results]

    def render(console):
        from rich.markup import escape

        for r in rows:
            status = "[green]ok[/green]" if r["ok"] else "[red]BAD[/red]"
            problems = "" if r["ok"] else ": " + escape("; ".join(r["problems"]))
            console.print(f"{status}  {r['name']}{problems}", highlight=False)
        if not rows:
            console.print("no packs to verify")

    o.emit(rows, render)
    bad = [r["name"] for r in rows if not r["ok"]]
    if bad:
        o.error(f"{len(bad)} damaged pack(s): {', '.join(bad)}",
                hint="remove them with `synmotion packs rm NAME --yes` and re-import or re-learn them")
        raise typer.Exit(ExitCode.INTEGRITY)


@app.command("export")
def export(ref: str = typer.Argument(..., help="Pack to export."),
           dest: Path = typer.Argument(..., help="File to write (conventionally NAME.smpack), or a directory."),
           lora: bool = typer.Option(False, "--lora", help="Write only the pack's LoRA, as a diffusers-format "
                                                           ".safetensors file that `load_lora_weights` reads."),
           variant: str = typer.Option("t2v", "--variant", help="Which variant's LoRA --lora writes (t2v or i2v)."),
           force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
           json_out: bool = JSON) -> None:
    """Write a pack as one portable file that `packs import` reads on any machine.

    Example: synmotion packs export clap ./clap.smpack

    Example: synmotion packs export clap ./clap-lora.safetensors --lora
    """
    from ..errors import NotFoundError, UsageError

    o = out(json_out)
    store = open_store()
    pack = store.resolve(ref)
    if dest.is_dir():
        dest = dest / (f"{pack.name}-{pack.tag}-{variant}-lora.safetensors" if lora else f"{pack.name}-{pack.tag}.smpack")
    if dest.exists() and not force:
        raise UsageError(f"{dest} already exists", hint="pass --force to overwrite it, or choose another path")
    if lora:
        member = ((pack.manifest.get("variants") or {}).get(variant) or {}).get("lora")
        if not member:
            raise NotFoundError(f"pack {pack.full_name} has no {variant} LoRA",
                                hint="see `synmotion packs show` for its variants")
        path = _copy_atomic(store.files(pack)[member], dest)
    else:
        path = store.export(pack.full_name, dest)
    o.info(f"exported {pack.full_name} to {path}")
    o.emit({"name": pack.full_name, "digest": pack.digest, "path": str(path)},
           lambda c: c.print(str(path), highlight=False, markup=False))


def _copy_atomic(src: Path, dest: Path) -> Path:
    import os
    import shutil

    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


@app.command("import")
def import_(archive: Path = typer.Argument(..., help="A .smpack file written by `packs export`."),
            name: Optional[str] = typer.Option(None, "--as", help="Install under this name[:tag] instead."),
            force: bool = typer.Option(False, "--force", help="Replace an existing pack of the same name:tag."),
            json_out: bool = JSON) -> None:
    """Install a pack from an exported file, after checking its schema, sizes and digests.

    Nothing is written to the store unless every check passes.

    Example: synmotion packs import ./clap.smpack --as clap:friend
    """
    from ..errors import NotFoundError

    o = out(json_out)
    if not archive.is_file():
        raise NotFoundError(f"no such file: {archive}")
    store = open_store()
    pack = store.import_archive(archive, name=name, force=force)
    o.info(f"imported {pack.full_name} (sha256:{pack.short_digest})")
    o.emit({"name": pack.full_name, "digest": pack.digest}, lambda c: c.print(pack.full_name, highlight=False))


@app.command("path")
def path(ref: Optional[str] = typer.Argument(None, help="A pack; without it, the store's root."),
         json_out: bool = JSON) -> None:
    """Print where the store lives, or the manifest and blob files of one pack.

    Example: synmotion packs path clap
    """
    o = out(json_out)
    store = open_store()
    if ref is None:
        o.emit({"root": str(store.root)}, lambda c: c.print(str(store.root), markup=False, highlight=False))
        return
    pack, files = find_pack(store, ref, o)
    data = {name: str(p) for name, p in files().items()}
    # typer.echo, not the rich console: rich would expand the tab that scripts split on.
    o.emit(data, lambda c: [typer.echo(f"{k}\t{v}") for k, v in data.items()])


@app.command("gc")
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be removed."),
       json_out: bool = JSON) -> None:
    """Remove blobs no pack references and temp files left by interrupted writes.

    Example: synmotion packs gc --dry-run
    """
    o = out(json_out)
    store = open_store()
    r = store.gc(dry_run=dry_run)
    data = {"dry_run": r.dry_run, "blobs": r.blobs, "blob_bytes": r.blob_bytes,
            "temp_paths": [str(p) for p in r.temp_paths], "temp_bytes": r.temp_bytes}
    verb = "would remove" if dry_run else "removed"
    o.info(f"{verb} {len(r.blobs)} unreferenced blob(s) and {len(r.temp_paths)} stale temp file(s), "
           f"{human_size(r.blob_bytes + r.temp_bytes)}")
    o.emit(data, lambda c: None)
