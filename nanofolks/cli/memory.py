"""`nanofolks memory ...`: what the crew remembers; search it, add to it, import, forget, maintain."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanofolks.cli.common import UserError, console, err_console, open_services, print_json

if TYPE_CHECKING:
    from nanofolks.memory.service import MemoryService

app = typer.Typer(help="The crew's memory: search, add, import, entities, forget, maintenance.", no_args_is_help=True)
JsonOpt = typer.Option(False, "--json", help="Print JSON.")
FileArg = typer.Argument(..., help="JSON Lines of {\"text\": ...}, or a Markdown/text file.")
PASSAGE_CHARS = 1200
LINE_EVERY = 10.0  # seconds between progress lines when stderr is no terminal


def _memory() -> MemoryService:
    return open_services().memory


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (stdout stays clean for --json); plain lines when stderr is no terminal."""
    import sys

    if not sys.stderr.isatty():
        yield ProgressLines(label)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=max(total, done))


class ProgressLines:
    """Progress as a line on stderr at most every LINE_EVERY seconds, and at the end: a log, a pipe or a
    service manager sees a long job move (a progress bar would be invisible there)."""

    def __init__(self, label: str):
        self.label = label
        self.meter = Meter()
        self._last = -LINE_EVERY

    def __call__(self, done: int, total: int) -> None:
        self.meter.update(done)
        now = time.monotonic()
        if now - self._last >= LINE_EVERY or done >= total:
            self._last = now
            err_console.print(f"{self.label}: {done:,}/{total:,} ({done / max(total, 1):.0%})"
                              f"{self.meter.describe(total - done)}", highlight=False, soft_wrap=True)


class Meter:
    """The rate of a job so far and the time its rest will take."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def describe(self, left: int) -> str:
        if not self.done:
            return ""
        return f", {self.rate:.1f}/s, about {_duration(left / self.rate)} left" if left else f", {self.rate:.1f}/s"


@app.command("status")
def status(as_json: bool = JsonOpt) -> None:
    """Counts, index health and sizes."""
    memory = _memory()
    with _progress("checking the index") as progress:
        memory.ensure_index(progress)
    info = memory.status()
    if as_json:
        print_json(info)
        return
    idx = info["index"]
    console.print(f"entries      {info['entries']} ({info['protected']} protected, {info['marked']} marked), "
                  f"{info['archived']} archived", highlight=False)
    console.print(f"entities     {info['entities']} ({info['relations']} relations), "
                  f"{info['preferences']} preferences", highlight=False)
    console.print(f"index        {idx['live']} vectors, {idx['deleted_slots']} free slots, capacity {idx['capacity']}, "
                  f"{_size(idx['file_bytes'])}  ({info['index_health']})", highlight=False)
    console.print(f"pending      {info['pending']} to embed  (embedder {info['embedder']})", highlight=False)
    whole = f"{_size(info['db_file_bytes'])} in all, " if info["db_file_bytes"] is not None else ""
    console.print(f"database     {whole}memory tables {_size(info['db_memory_bytes'] or 0)}", highlight=False)


@app.command("search")
def search(
    query: str,
    as_json: bool = JsonOpt,
    limit: int = typer.Option(10, "--limit", "-k", min=1, max=200, help="How many results."),
    room: str = typer.Option(None, "--room", "-r", help="Only this room."),
    bot: str = typer.Option(None, "--bot", help="Only what this bot said."),
    days: float = typer.Option(None, "--days", min=0, help="Only the last N days."),
) -> None:
    """Search entries and past messages by meaning and keywords."""
    memory = _memory()
    since = dt.datetime.now().timestamp() - days * 86400 if days else None
    hits = memory.search(query, limit, room, bot.lstrip("@") if bot else None, since)
    if as_json:
        print_json([h.as_dict() for h in hits])
        return
    if not hits:
        console.print("nothing found")
    for h in hits:
        it = h.item
        where = f"#{it.room} " if it.room else ""
        console.print(f"[dim]{_date(it.created_at)} {where}{it.source}:{it.id} {h.score:.2f}[/]", highlight=False)
        console.print(f"  {it.text[:300]}", highlight=False, markup=False)


@app.command("add")
def add(text: str, room: str = typer.Option(None, "--room", "-r", help="Where it belongs (default: everywhere).")) -> None:
    """Remember a note (protected: never forgotten)."""
    memory = _memory()
    room_id = None
    if room:
        room_id = memory.search_repo.room_id(room.lstrip("#"))
        if room_id is None:
            raise UserError(f"no room named {room!r}")
    entry = memory.add(text, room_id=room_id)
    console.print(f"[green]✓[/] remembered as entry {entry.id}", highlight=False)


@app.command("import")
def import_(file: Path = FileArg) -> None:
    """Import passages: each JSON line's text, or a text file split into paragraphs/sections. Stopping it is
    safe (Ctrl-C, a crash): the same import again skips what was stored and goes on."""
    passages = read_passages(file)
    memory = _memory()
    plan = memory.plan_import(passages)
    err_console.print(f"{file.name}: {plan.passages:,} passages ({_size(file.stat().st_size)})"
                      + (f", {plan.known:,} already stored: going on from there" if plan.known else "")
                      + f"; {plan.to_embed:,} to embed with {memory.embedder.name}", highlight=False, soft_wrap=True)
    estimate = Meter()

    def estimated(done: int, total: int) -> None:
        """After the first batch, the time the whole import will take at the rate measured here."""
        if not estimate.done and done:
            estimate.update(done)
            err_console.print(f"about {_duration((total - done) / estimate.rate)} at {estimate.rate:.1f} passages/s "
                              "on this machine; stopping is safe: run the same import again to go on",
                              highlight=False, soft_wrap=True)

    try:
        with _progress(f"importing {file.name}") as progress:
            new, known = memory.import_passages(passages, f"import:{file.name}",
                                                lambda done, total: (estimated(done, total), progress(done, total)))
    except KeyboardInterrupt:
        left = memory.plan_import(passages)
        err_console.print(f"stopped: {left.passages - left.known:,} passages not stored yet, {left.to_embed:,} "
                          f"not embedded yet; run `nanofolks memory import {file}` again to go on",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    console.print(f"[green]✓[/] {new} passages imported" + (f", {known} already known" if known else ""),
                  highlight=False)


def read_passages(file: Path) -> list[str]:
    """The passages of a file; a bad file is one clear error, and nothing is imported from it."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no such file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from None
    if file.suffix.lower() in (".jsonl", ".ndjson"):
        passages = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise UserError(f"{file}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
                raise UserError(f"{file}:{n}: each line must be an object with a non-empty \"text\" string")
            passages.append(item["text"].strip())
    else:
        passages = split_passages(text)
    if not passages:
        raise UserError(f"{file} holds no text to import")
    return passages


def split_passages(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """Markdown or plain text -> passages: split at headings and blank lines, short paragraphs joined up to
    `limit` characters under their heading, long ones cut at sentence ends."""
    out: list[str] = []
    heading = ""
    current = ""
    for block in re.split(r"\n\s*\n|\n(?=#{1,6} )", text):
        block = block.strip()
        if not block:
            continue
        if re.match(r"#{1,6} ", block):
            if current:
                out.append(current)
            lines = block.split("\n", 1)
            heading, current = lines[0].lstrip("#").strip(), ""
            block = lines[1].strip() if len(lines) > 1 else ""
            if not block:
                continue
        for piece in _cut(block, limit):
            if current and len(current) + len(piece) + 2 > limit:
                out.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else (f"{heading}: {piece}" if heading else piece)
    if current:
        out.append(current)
    return out


def _cut(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    pieces, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", block):
        if current and len(current) + len(sentence) + 1 > limit:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    return pieces + ([current] if current else [])


@app.command("entities")
def entities(as_json: bool = JsonOpt) -> None:
    """People, pets, places, organisations, projects the crew knows of."""
    memory = _memory()
    found = memory.list_entities()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no entities yet")
    for e in found:
        aka = f"  (aka {', '.join(e['aliases'])})" if e["aliases"] else ""
        console.print(f"[bold]{e['name']}[/] {e['type']}  {e['mentions']} mentions{aka}", highlight=False)


@app.command("entity")
def entity(name: str, as_json: bool = JsonOpt) -> None:
    """Who or what NAME is: type, aliases, relations and the messages that support them."""
    from nanofolks.memory.priming import describe

    memory = _memory()
    info = memory.entity(name)
    if as_json:
        print_json(info)
        return
    aka = f" (aka {', '.join(info['aliases'])})" if info["aliases"] else ""
    console.print(f"[bold]{info['name']}[/]{aka}: {info['type']}, {info['mentions']} mentions, last seen "
                  f"{_date(info['last_seen'])}", highlight=False)
    for rel in info["relations"]:
        console.print(f"  {describe(rel)}", highlight=False)
        for ev in rel["events"]:
            console.print(f"    [dim]message {ev['message_id']}: {ev['text'][:160]}[/]", highlight=False)
    if info["events"]:
        console.print("  mentioned in:")
        for ev in info["events"]:
            console.print(f"    [dim]{_date(ev['created_at'])} message {ev['message_id']}: {ev['text'][:160]}[/]",
                          highlight=False)


@app.command("forget")
def forget(memory_id: str = typer.Argument(..., metavar="ID", help="An entry id (12) or message:345.")) -> None:
    """Forget one memory: an entry goes to the archive (restorable), a message leaves the index."""
    memory = _memory()
    said = memory.forget(memory_id)
    console.print(f"[green]✓[/] {said}", highlight=False)


@app.command("restore")
def restore(archive_id: int = typer.Argument(..., metavar="ARCHIVE_ID")) -> None:
    """Bring an archived entry back (see `memory archive`)."""
    memory = _memory()
    entry = memory.restore(archive_id)
    console.print(f"[green]✓[/] restored as entry {entry.id}: {entry.text[:120]}", highlight=False)


@app.command("archive")
def archive(as_json: bool = JsonOpt, limit: int = typer.Option(50, "--limit", min=1)) -> None:
    """Entries forgotten or merged, newest first."""
    memory = _memory()
    rows = memory.archive.list(limit)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        console.print(f"{r['id']:>5}  {_date(r['archived_at'])}  {r['reason']:<22} {r['text'][:100]}", highlight=False)


@app.command("rebuild-index")
def rebuild_index(reembed: bool = typer.Option(False, "--reembed", help="Embed everything again.")) -> None:
    """Rebuild the vector index file from the database."""
    memory = _memory()
    with _progress("rebuilding") as progress:
        report = memory.rebuild_index(reembed, lambda _phase, done, total: progress(done, total))
    console.print(f"[green]✓[/] index rebuilt: {report['indexed_from_db']} vectors from the database, "
                  f"{report['embedded']} embedded", highlight=False)


@app.command("consolidate")
def consolidate(as_json: bool = JsonOpt) -> None:
    """Distil recent events into knowledge, merge duplicates, run forgetting (normally daily)."""
    memory = _memory()
    report = memory.consolidate()
    if as_json:
        print_json(report)
        return
    forgot = report.get("forgetting", {})
    console.print(f"[green]✓[/] {report['events']} events read, {report['entries_created']} entries distilled, "
                  f"{report.get('merged', 0)} merged; forgetting: {forgot.get('marked', 0)} marked, "
                  f"{forgot.get('archived', 0)} archived, {forgot.get('messages_unindexed', 0)} old messages "
                  "left the index", highlight=False)


def _date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{max(1, round(seconds))} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
