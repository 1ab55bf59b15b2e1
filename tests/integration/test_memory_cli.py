"""`nanofolks memory ...` as a user runs it, and memory inside a real turn (litellm -> scripted server)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli
from tests.fakes.llm_server import ScriptedLLM


def cli_json(*args: str, home: Path) -> object:
    result = run_cli(*args, "--json", home=home, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_memory_cli_round_trip(crew_home: Path, tmp_path: Path) -> None:
    added = run_cli("memory", "add", "My dog Rex loves the beach", home=crew_home, timeout=180)
    assert added.returncode == 0, added.stderr
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text('{"text": "Lucas is my brother"}\n\n{"text": "The boiler was serviced in March"}\n')
    imported = run_cli("memory", "import", str(jsonl), home=crew_home, timeout=180)
    assert imported.returncode == 0 and "2 passages imported" in imported.stdout, imported.stderr
    again = run_cli("memory", "import", str(jsonl), home=crew_home, timeout=180)
    assert "2 already known" in again.stdout
    md = tmp_path / "trip.md"
    md.write_text("# Trip\n\nWe fly to Lisbon on May 3.\n\n## Hotel\n\nThe hotel is near the river.\n")
    assert run_cli("memory", "import", str(md), home=crew_home, timeout=180).returncode == 0

    hits = cli_json("memory", "search", "pet", "--limit", "3", home=crew_home)
    assert isinstance(hits, list) and 1 <= len(hits) <= 3
    for hit in hits:
        assert {"text", "score", "source", "created_at"} <= set(hit)
        assert isinstance(hit["score"], float) and isinstance(hit["created_at"], float)
    assert hits[0]["text"] == "My dog Rex loves the beach" and hits[0]["source"].startswith("entry:")
    assert cli_json("memory", "search", "Lisbon", "--room", "general", home=crew_home) == []  # imports belong to no room

    status = cli_json("memory", "status", home=crew_home)
    assert status["entries"] == 5 and status["pending"] == 0
    assert status["index"]["live"] == 5 and status["index_health"] == "ok"

    entities = cli_json("memory", "entities", home=crew_home)
    assert {"Rex", "Lucas"} <= {e["name"] for e in entities}
    lucas = cli_json("memory", "entity", "Lucas", home=crew_home)
    assert lucas["relations"][0]["predicate"] == "brother"

    rex_id = hits[0]["source"].split(":")[1]
    assert run_cli("memory", "forget", rex_id, home=crew_home).returncode == 0
    assert all(h["text"] != "My dog Rex loves the beach" for h in cli_json("memory", "search", "pet", home=crew_home))

    (crew_home / "memory.hnsw").write_bytes(b"garbage")
    status = cli_json("memory", "status", home=crew_home)
    assert status["index_health"].startswith("rebuilt") and status["index"]["live"] == 4
    rebuilt = run_cli("memory", "rebuild-index", home=crew_home, timeout=180)
    assert rebuilt.returncode == 0 and "4 vectors" in rebuilt.stdout
    report = cli_json("memory", "consolidate", home=crew_home)
    assert {"events", "entries_created", "merged", "forgetting"} <= set(report)


def test_memory_cli_errors_are_one_line(crew_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    cases = [
        (("memory", "import", str(bad)), "bad.jsonl:2"),
        (("memory", "import", str(tmp_path / "missing.md")), "no such file"),
        (("memory", "forget", "nope"), "not a memory id"),
        (("memory", "forget", "999"), "no memory entry 999"),
        (("memory", "entity", "Nobody"), "no entity named"),
        (("memory", "search", "x", "--room", "nowhere"), "no room named"),
        (("memory", "add", "   "), "nothing to remember"),
    ]
    for args, message in cases:
        result = run_cli(*args, home=crew_home, timeout=180)
        assert result.returncode == 1, args
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert cli_json("memory", "status", home=crew_home)["entries"] == 0  # the bad import stored nothing


async def test_a_turn_remembers_and_primes_the_next_one(crew_home: Path, llm_server: ScriptedLLM) -> None:
    from nanofolks.services import Services

    services = Services.open()
    try:
        general = services.rooms.general()
        await services.pipeline.handle(general, "remember that my locker code is 4521")
        await services.pipeline.handle(general, "please keep it short")
        assert services.memory.wait_indexed(timeout=120)
        entry = services.memory.search("locker code", limit=1)[0].item
        assert entry.source == "entry" and entry.protected and entry.text == "My locker code is 4521"
        await services.pipeline.handle(general, "@coder which locker is mine?")
    finally:
        services.close()
    messages = llm_server.requests[-1]["messages"]
    memory = messages[-2]  # the memory block comes last but for the question: the rest stays a cached prefix
    assert memory["role"] == "system" and "## Memory" in memory["content"]
    assert "My locker code is 4521" in memory["content"] and "Keep answers short." in memory["content"]
    assert "## Memory" not in messages[0]["content"] and messages[-1]["content"] == "@coder which locker is mine?"


def test_an_import_warns_shows_progress_lines_and_goes_on_after_ctrl_c(crew_home: Path, tmp_path: Path,
                                                                        llm_server: ScriptedLLM) -> None:
    """The embedding model answers each batch after 0.3 s; the import is stopped after its first batch and
    run again: it goes on where it stopped, each passage stored and embedded once."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    assert run_cli("config", "set", "memory.embedder", "openai/fake-embed", home=crew_home).returncode == 0
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": f"Logbook entry {i}: the tide at pier {i} was {i % 7} feet "
                                                 "[[delay:0.3]]"}) + "\n" for i in range(400)))
    env = {**os.environ, "NANOFOLKS_HOME": str(crew_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nanofolks", "memory", "import", str(notes)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # type: ignore[union-attr]
        lines.append(line)
        if "passages/s on this machine" in line:
            proc.send_signal(signal.SIGINT)
            break
    err = "".join(lines) + proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(60) == 130, err
    assert "notes.jsonl: 400 passages" in lines[0] and "400 to embed with openai/fake-embed" in lines[0], err
    assert "stopped:" in err and "again to go on" in err and "Traceback" not in err

    again = run_cli("memory", "import", str(notes), home=crew_home, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "already stored: going on from there" in again.stderr
    new, known = (int(n) for n in re.search(r"(\d+) passages imported, (\d+) already known", again.stdout).groups())
    assert new + known == 400 and known >= 32  # the first run's batches were kept
    # What is left to embed: the new passages and those the first run stored but had not embedded yet.
    to_embed = int(re.search(r"(\d+) to embed", again.stderr).group(1))
    assert new <= to_embed <= 400 - 32
    assert f"importing notes.jsonl: {to_embed}/{to_embed} (100%)" in again.stderr  # progress lines: stderr is a pipe
    status = cli_json("memory", "status", home=crew_home)
    assert status["entries"] == 400 and status["pending"] == 0
