"""The CLI as a user runs it, in its own process, against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from nanofolks.services import Services
from tests.conftest import ROOT, onboard, run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM

LABELS = {
    "leader": "@leader (🏴‍☠️ Blackbeard)",
    "researcher": "@researcher (🧭 Compass Kate)",
    "coder": "@coder (🔨 Ironhook)",
    "social": "@social (🦜 Polly Flint)",
    "creative": "@creative (🎻 Fiddler Finn)",
    "auditor": "@auditor (⚖️ Sharp-Eye Meg)",
}


def stored(home: Path, room: str = "general") -> list[tuple[str, str]]:
    services = Services.open(db_file=home / "nanofolks.db")
    try:
        room_id = services.db.query_one("SELECT id FROM rooms WHERE name = ?", (room,))[0]
        return [(r[0], r[1]) for r in services.db.query(
            "SELECT author, content FROM messages WHERE room_id = ? AND kind = 'chat' ORDER BY id", (room_id,))]
    finally:
        services.close()


def test_coder_mention_answers_labelled(crew_home: Path, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", reply="```python\nprint('hello world')\n```"))
    result = run_cli("chat", "-m", "@coder write hello world in python", home=crew_home)
    assert result.returncode == 0, result.stderr
    assert LABELS["coder"] in result.stdout
    assert "print('hello world')" in result.stdout
    assert llm_server.handles_seen() == ["coder"]
    assert stored(crew_home)[-2:] == [("user", "@coder write hello world in python"),
                                      ("coder", "```python\nprint('hello world')\n```")]


def test_all_gets_six_labelled_replies(crew_home: Path, llm_server: ScriptedLLM) -> None:
    result = run_cli("chat", "-m", "@all report in", home=crew_home)
    assert result.returncode == 0, result.stderr
    for handle, label in LABELS.items():
        assert label in result.stdout
        assert f"[@{handle}] @all report in" in result.stdout
    assert sorted(h for h in llm_server.handles_seen()) == sorted(LABELS)


def test_leader_coordinates_by_default(crew_home: Path, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(handle="coder", reply="Use a static site generator."),
                   Rule(handle="leader", contains="static site generator", reply="Plan: the coder says use an SSG."))
    result = run_cli("chat", "-m", "build me a landing page", home=crew_home)
    assert result.returncode == 0, result.stderr
    assert llm_server.handles_seen() == ["coder", "leader"]  # the specialist first, the leader last
    assert LABELS["leader"] in result.stdout and "Plan: the coder says use an SSG." in result.stdout
    assert LABELS["coder"] not in result.stdout  # one answer for the user, from the leader


def test_greeting_goes_to_leader_alone(crew_home: Path, llm_server: ScriptedLLM) -> None:
    result = run_cli("chat", "-m", "Hello!", home=crew_home)
    assert result.returncode == 0, result.stderr
    assert llm_server.handles_seen() == ["leader"]
    assert LABELS["leader"] in result.stdout


def test_history_across_two_processes(crew_home: Path, llm_server: ScriptedLLM) -> None:
    assert run_cli("chat", "-m", "My ship is called the Ada.", home=crew_home).returncode == 0
    assert run_cli("chat", "-m", "What is my ship called?", home=crew_home).returncode == 0
    second = llm_server.requests[-1]["messages"]
    assert any("My ship is called the Ada." in str(m["content"]) for m in second)
    assert any(m["role"] == "assistant" for m in second)  # its own earlier answer, as the assistant


def test_two_chats_write_one_room_at_once(crew_home: Path, llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(delay=0.2, reply="noted: {user}"))
    env = {"NANOFOLKS_HOME": str(crew_home), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "nanofolks", "chat", "-m", f"@coder note {i}", "--no-stream"],
                         env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    messages = stored(crew_home)
    assert sorted(c for a, c in messages if a == "user") == [f"@coder note {i}" for i in range(4)]
    assert sum(a == "coder" for a, _ in messages) == 4


def test_dead_model_is_one_clear_line_and_message_kept(home: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    onboard(home, "openai/fake-model", f"http://127.0.0.1:{port}/v1")
    result = run_cli("chat", "-m", "@coder are you there?", home=home)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "@coder could not answer" in result.stderr and "openai/fake-model" in result.stderr
    assert stored(home)[-1] == ("user", "@coder are you there?")


def test_slow_model_times_out_then_next_turn_sees_the_message(crew_home: Path, llm_server: ScriptedLLM) -> None:
    run_cli("config", "set", "agents.defaults.timeout", "1", home=crew_home)
    run_cli("config", "set", "agents.defaults.maxRetries", "0", home=crew_home)
    llm_server.add(Rule(handle="leader", delay=5, times=1))
    slow = run_cli("chat", "-m", "Remember the code word: albatross", home=crew_home)
    assert slow.returncode == 1 and "Traceback" not in slow.stderr
    assert "could not answer" in slow.stderr
    assert run_cli("chat", "-m", "What was the code word?", home=crew_home).returncode == 0
    assert any("albatross" in str(m["content"]) for m in llm_server.requests[-1]["messages"])


def test_bad_room_names_and_unknown_rooms(crew_home: Path) -> None:
    for bad in ("../escape", "a b", "x/y"):
        result = run_cli("room", "create", bad, home=crew_home)
        assert result.returncode != 0 and "invalid room name" in result.stderr
        assert "Traceback" not in result.stderr
    assert not list(crew_home.glob("**/escape*"))
    result = run_cli("chat", "--room", "nowhere", "-m", "hi", home=crew_home)
    assert result.returncode == 1 and "no room named 'nowhere'" in result.stderr


def test_bad_config_values(crew_home: Path) -> None:
    result = run_cli("config", "set", "agents.defaults.temperature", '"hot"', home=crew_home)
    assert result.returncode == 1 and "agents.defaults.temperature" in result.stderr
    result = run_cli("config", "set", "no.such.key", "1", home=crew_home)
    assert result.returncode == 1 and "unknown config key" in result.stderr
    ok = run_cli("config", "set", "orchestrator.turnBudget", "4", home=crew_home)
    assert ok.returncode == 0
    assert json.loads(run_cli("config", "get", "orchestrator.turn_budget", home=crew_home).stdout) == 4


def test_rooms_and_tasks_from_the_issue(crew_home: Path) -> None:
    assert run_cli("room", "create", "project-alpha", home=crew_home).returncode == 0
    assert run_cli("room", "invite", "project-alpha", "researcher", home=crew_home).returncode == 0
    add = run_cli("room", "task", "add", "--room", "project-alpha", "--owner", "coder", "--priority", "high",
                  "--due", "2025-01-15", "Ship landing page", home=crew_home)
    assert add.returncode == 0, add.stderr
    listed = json.loads(run_cli("room", "task", "list", "--room", "project-alpha", "--json", home=crew_home).stdout)
    assert listed == [{"id": 1, "title": "Ship landing page", "owner": "coder", "status": "todo",
                       "priority": "high", "due": "2025-01-15"}]
    rooms = json.loads(run_cli("room", "list", "--json", home=crew_home).stdout)
    alpha = next(r for r in rooms if r["name"] == "project-alpha")
    assert alpha["type"] == "project" and set(alpha["members"]) == {"leader", "researcher", "coder"}


def test_onboard_yes_and_single(home: Path) -> None:
    result = run_cli("onboard", "--yes", "--team", "space_crew", "--no-warm", home=home)
    assert result.returncode == 0, result.stderr
    assert "warmed up" not in result.stdout
    bots = json.loads(run_cli("bot", "list", "--json", home=home).stdout)
    assert [b["handle"] for b in bots] == list(LABELS)
    assert json.loads(run_cli("config", "get", "agents.defaults.model", home=home).stdout) == "local/smollm2"
    single = run_cli("onboard", "--yes", "--single", "--no-warm", home=home)
    assert single.returncode == 0
    assert [b["handle"] for b in json.loads(run_cli("bot", "list", "--json", home=home).stdout)] == ["leader"]
    bad = run_cli("onboard", "--yes", "--team", "ninjas", home=home)
    assert bad.returncode == 1 and "unknown team" in bad.stderr


def test_bot_rename_and_mention_by_new_name(crew_home: Path, llm_server: ScriptedLLM) -> None:
    assert run_cli("bot", "rename", "coder", "Sparky", home=crew_home).returncode == 0
    result = run_cli("chat", "-m", "@Sparky hi", home=crew_home)
    assert "@coder (🔨 Sparky)" in result.stdout
    assert llm_server.handles_seen() == ["coder"]
    clash = run_cli("bot", "rename", "social", "Sparky", home=crew_home)
    assert clash.returncode == 1 and "already" in clash.stderr


def test_interactive_chat_switches_rooms(crew_home: Path, llm_server: ScriptedLLM) -> None:
    run_cli("room", "create", "ops", home=crew_home)
    result = run_cli("chat", home=crew_home, input="/rooms\n/room ops\nhello ops\n/room ../x\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "#ops" in result.stdout and "now in #ops" in result.stdout
    assert "invalid room name" in result.stderr
    assert stored(crew_home, "ops")[0] == ("user", "hello ops")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom nanofolks.cli.app import main\nsys.argv=['nanofolks','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('litellm','telegram','discord','slack_bolt','hnswlib','llama_cpp',"
        "'numpy','tiktoken') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY=\n" in result.stdout or result.stdout.rstrip().endswith("HEAVY=")
    assert "Usage" in result.stdout


def test_a_long_message_reaches_the_model_as_head_and_tail_and_is_kept_whole(crew_home: Path,
                                                                          llm_server: ScriptedLLM) -> None:
    text = "@coder START " + "lorem ipsum dolor " * 2_300 + "what is the END?"  # ~41 kB, ~10k tokens
    result = run_cli("chat", "-m", text, home=crew_home)
    assert result.returncode == 0, result.stderr
    asked = llm_server.requests[-1]["messages"][-1]["content"]
    assert "START" in asked and asked.endswith("what is the END?") and "characters cut" in asked
    assert "kept whole in the room" in result.stderr  # the user is told
    assert stored(crew_home)[-2][1] == text  # the room keeps every character


def test_bytes_that_are_not_utf8_are_stored_as_replacement_characters(crew_home: Path,
                                                                      llm_server: ScriptedLLM) -> None:
    result = run_cli("chat", "-m", "@coder hi \udcff there", home=crew_home)  # argv byte 0xff
    assert result.returncode == 0, result.stderr
    assert stored(crew_home)[-2] == ("user", "@coder hi \ufffd there")
