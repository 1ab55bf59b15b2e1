"""Memory through a real turn: the crew's `search_memory` tool, and large tool outputs kept apart."""

from __future__ import annotations

from pathlib import Path

from nanofolks.services import Services
from nanofolks.store.memory import load_blob
from tests.fakes.llm_server import Rule, ScriptedLLM


async def test_bots_search_memory_and_big_outputs_become_blobs(crew_home: Path, llm_server: ScriptedLLM) -> None:
    services = Services.open()
    try:
        room = services.rooms.general()
        await services.pipeline.handle(room, "remember that the launch code word is albatross")
        llm_server.add(
            Rule(handle="researcher", has_tool_result=False,
                 tool_calls=[{"name": "search_memory", "arguments": {"query": "launch code word"}}]),
            Rule(handle="researcher", has_tool_result=True, reply="Found it: {tool_result}"),
        )
        answer = await services.pipeline.handle(room, "@researcher what is the launch code word?")
        assert "albatross" in answer.markdown()

        (services.workspace / "big.txt").write_text("0123456789" * 3000)  # 30 KB
        llm_server.add(
            Rule(handle="coder", has_tool_result=False,
                 tool_calls=[{"name": "read_file", "arguments": {"path": "big.txt"}}]),
            Rule(handle="coder", has_tool_result=True, reply="Read it."),
        )
        await services.pipeline.handle(room, "@coder read big.txt")
        stored = services.db.query_one(
            "SELECT content FROM messages WHERE kind = 'tool_result' AND author = 'coder' ORDER BY id DESC")[0]
        assert len(stored) < 3000 and "blob:" in stored
        blob_id = int(stored.rsplit("blob:", 1)[1].rstrip("]"))
        assert load_blob(services.db, blob_id) == "0123456789" * 3000
    finally:
        services.close()
