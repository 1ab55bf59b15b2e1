"""Tasks: a room's tasks as a board (todo, in progress, blocked, done), each with its handoff history;
create, move and hand off here. The rules are rooms/tasks.py's, as for `nanofolks room task`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from nanofolks.rooms.rooms import RoomError
from nanofolks.rooms.tasks import TaskError
from nanofolks.store.rooms import Room
from nanofolks.store.tasks import PRIORITIES, STATUSES
from nanofolks.web.page import DASHBOARD, Dashboard

TITLES = {"todo": "To do", "in_progress": "In progress", "blocked": "Blocked", "done": "Done"}


def setup(app: web.Application) -> None:
    app.router.add_get("/tasks", page)
    app.router.add_post("/tasks/{room}/new", create)
    app.router.add_post("/tasks/{room}/{number:\\d+}/move", move)
    app.router.add_post("/tasks/{room}/{number:\\d+}/handoff", handoff)


def _board(dash: Dashboard, room_name: str) -> dict[str, Any]:
    services = dash.services
    room = services.rooms.get(room_name)
    columns: dict[str, list[dict[str, Any]]] = {status: [] for status in STATUSES}
    for task in services.tasks.list(room):
        columns[task.status].append({"task": task, "history": services.tasks.repo.history(task.id)})
    return {"room": room, "columns": columns, "rooms": services.rooms.list()}


async def page(request: web.Request, room_name: str = "", problem: str = "", done: str = "") -> web.Response:
    dash = request.app[DASHBOARD]
    room_name = room_name or request.query.get("room", "general")
    try:
        board = await dash.run(_board, dash, room_name)
    except RoomError as exc:
        problem, board = str(exc), await dash.run(_board, dash, "general")
    return dash.render(request, "tasks.html", page="tasks", titles=TITLES, statuses=STATUSES, priorities=PRIORITIES,
                       bots=list(dash.services.crew.bots.values()), problem=problem, done=done, **board)


async def _act(request: web.Request, action: Callable[[Room, dict[str, str]], str]) -> web.Response:
    dash = request.app[DASHBOARD]
    form = {k: str(v).strip() for k, v in (await request.post()).items()}
    name = request.match_info["room"]

    def run() -> str:
        return action(dash.services.rooms.get(name), form)

    try:
        done = await dash.run(run)
    except (RoomError, TaskError) as exc:
        return await page(request, name, problem=str(exc))
    return await page(request, name, done=done)


def _number(request: web.Request) -> int:
    return int(request.match_info["number"])


async def create(request: web.Request) -> web.Response:
    tasks = request.app[DASHBOARD].services.tasks

    def add(room: Room, form: dict[str, str]) -> str:
        task = tasks.add(room, form.get("title", ""), form.get("owner", ""), form.get("priority", "medium"),
                         form.get("due") or None, actor="owner")
        return f"task #{task.number} created for @{task.owner}"

    return await _act(request, add)


async def move(request: web.Request) -> web.Response:
    tasks, number = request.app[DASHBOARD].services.tasks, _number(request)

    def moved(room: Room, form: dict[str, str]) -> str:
        task = tasks.set_status(room, number, form.get("status", ""), actor="owner")
        return f"task #{task.number} is {task.status.replace('_', ' ')}"

    return await _act(request, moved)


async def handoff(request: web.Request) -> web.Response:
    tasks, number = request.app[DASHBOARD].services.tasks, _number(request)

    def handed(room: Room, form: dict[str, str]) -> str:
        task = tasks.handoff(room, number, form.get("owner", ""), form.get("reason", ""), actor="owner")
        return f"task #{task.number} handed to @{task.owner}"

    return await _act(request, handed)
