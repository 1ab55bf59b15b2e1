"""`nanofolks room ...`: rooms, members, chat mappings, and `room task ...`."""

from __future__ import annotations

import datetime as dt

import typer

from nanofolks.cli.common import console, open_services, print_json

app = typer.Typer(help="Rooms: where conversations, members and tasks live.", no_args_is_help=True)
task_app = typer.Typer(help="A room's tasks: owners, status, handoffs, history.", no_args_is_help=True)
app.add_typer(task_app, name="task")

RoomOpt = typer.Option(..., "--room", "-r", help="The room's name.")


@app.command("create")
def create(name: str, type_: str = typer.Option("project", "--type", "-t", help="open, project, direct, coordination.")) -> None:
    """Create a room (open rooms hold the whole crew; others start with the leader)."""
    room = open_services().rooms.create(name, type_)
    console.print(f"[green]✓[/] created #{room.name} ({room.type}) with {_members(room.members)}", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every room, its type and members."""
    rooms = open_services().rooms.list()
    if as_json:
        print_json([{"name": r.name, "type": r.type, "members": r.members} for r in rooms])
        return
    for r in rooms:
        console.print(f"[bold]#{r.name}[/] ({r.type})  {_members(r.members)}", highlight=False)


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A room's members, mapped chats, tasks and message count."""
    services = open_services()
    room = services.rooms.get(name)
    mappings = [f"{c}:{chat}" for c, chat, _ in services.rooms.repo.mappings(room.id)]
    tasks = services.tasks.list(room)
    count = services.messages.count(room.id)
    if as_json:
        print_json({"name": room.name, "type": room.type, "members": room.members, "chats": mappings,
                    "tasks": len(tasks), "messages": count})
        return
    console.print(f"[bold]#{room.name}[/] ({room.type})", highlight=False)
    console.print(f"  members  {_members(room.members)}", highlight=False)
    console.print(f"  chats    {', '.join(mappings) or '-'}", highlight=False)
    console.print(f"  tasks    {len(tasks)} ({sum(t.status != 'done' for t in tasks)} open)")
    console.print(f"  messages {count}")


@app.command("invite")
def invite(name: str, bot: str) -> None:
    """Add a bot to a room."""
    room = open_services().rooms.invite(name, bot)
    console.print(f"[green]✓[/] #{room.name}: {_members(room.members)}", highlight=False)


@app.command("remove")
def remove(name: str, bot: str) -> None:
    """Take a bot out of a room."""
    room = open_services().rooms.remove(name, bot)
    console.print(f"[green]✓[/] #{room.name}: {_members(room.members)}", highlight=False)


@app.command("map")
def map_(name: str, chat: str = typer.Argument(..., help="CHANNEL:CHAT_ID, e.g. telegram:123456")) -> None:
    """Send a platform chat's messages to this room."""
    room = open_services().rooms.map_chat(name, chat)
    console.print(f"[green]✓[/] {chat} → #{room.name}", highlight=False)


@app.command("unmap")
def unmap(chat: str = typer.Argument(..., help="CHANNEL:CHAT_ID")) -> None:
    """Send a platform chat back to #general."""
    removed = open_services().rooms.unmap_chat(chat)
    console.print(f"[green]✓[/] {chat} → #general" if removed else f"{chat} was not mapped", highlight=False)


@task_app.command("list")
def task_list(room: str = RoomOpt, owner: str = typer.Option(None, "--owner", help="Only this bot's tasks."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A room's tasks."""
    services = open_services()
    tasks = services.tasks.list(services.rooms.get(room), owner.lstrip("@") if owner else None)
    if as_json:
        print_json([{"id": t.number, "title": t.title, "owner": t.owner, "status": t.status, "priority": t.priority,
                     "due": t.due} for t in tasks])
        return
    if not tasks:
        console.print("no tasks")
    for t in tasks:
        due = f"  due {t.due}" if t.due else ""
        console.print(f"[bold]{t.number:>3}[/]  [{_STATUS_STYLE[t.status]}]{t.status:<11}[/] {t.priority:<6} "
                      f"@{t.owner:<10} {t.title}{due}", highlight=False)


@task_app.command("add")
def task_add(
    title: str,
    room: str = RoomOpt,
    owner: str = typer.Option(..., "--owner", help="The bot who owns it."),
    priority: str = typer.Option("medium", "--priority", help="low, medium, high, urgent."),
    due: str = typer.Option(None, "--due", help="YYYY-MM-DD."),
) -> None:
    """Add a task to a room."""
    services = open_services()
    task = services.tasks.add(services.rooms.get(room), title, owner.lstrip("@"), priority, due)
    console.print(f"[green]✓[/] task {task.number} in #{room}: {task.title} (@{task.owner}, {task.priority})",
                  highlight=False)


@task_app.command("status")
def task_status(task_id: int = typer.Argument(..., metavar="ID"), status: str = typer.Argument(..., help="todo, in_progress, blocked, done."),
                room: str = RoomOpt, reason: str = typer.Option("", "--reason")) -> None:
    """Change a task's status."""
    services = open_services()
    task = services.tasks.set_status(services.rooms.get(room), task_id, status, reason=reason)
    console.print(f"[green]✓[/] task {task.number}: {task.status}")


@task_app.command("assign")
def task_assign(task_id: int = typer.Argument(..., metavar="ID"), bot: str = typer.Argument(...), room: str = RoomOpt,
                reason: str = typer.Option("", "--reason")) -> None:
    """Give a task to another bot."""
    services = open_services()
    task = services.tasks.assign(services.rooms.get(room), task_id, bot.lstrip("@"), reason=reason)
    console.print(f"[green]✓[/] task {task.number} → @{task.owner}")


@task_app.command("handoff")
def task_handoff(task_id: int = typer.Argument(..., metavar="ID"), bot: str = typer.Argument(...), room: str = RoomOpt,
                 reason: str = typer.Option(..., "--reason", help="Why it changes hands.")) -> None:
    """Hand a task over to another bot, with the reason."""
    services = open_services()
    task = services.tasks.handoff(services.rooms.get(room), task_id, bot.lstrip("@"), reason)
    console.print(f"[green]✓[/] task {task.number} handed to @{task.owner}")


@task_app.command("history")
def task_history(task_id: int = typer.Argument(..., metavar="ID"), room: str = RoomOpt,
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every change of a task: who, when, why."""
    services = open_services()
    events = services.tasks.history(services.rooms.get(room), task_id)
    if as_json:
        print_json([e.__dict__ for e in events])
        return
    for e in events:
        when = dt.datetime.fromtimestamp(e.at).strftime("%Y-%m-%d %H:%M")
        change = f"{e.from_value or ''} → {e.to_value or ''}" if e.kind != "created" else f"owner @{e.to_value}"
        console.print(f"{when}  {e.actor:<10} {e.kind:<9} {change}" + (f"  ({e.reason})" if e.reason else ""),
                      highlight=False)


_STATUS_STYLE = {"todo": "white", "in_progress": "yellow", "blocked": "red", "done": "green"}


def _members(members: list[str]) -> str:
    return ", ".join(f"@{m}" for m in members) or "nobody"
