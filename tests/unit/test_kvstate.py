"""Saved KV states: the longest shared prefix wins, RAM stays in budget, and a file on disk is used only
when it is whole and was made by the same model, build and context size."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanofolks.llm.kvstate import MAGIC, PrefixStates, Snapshot, shared_prefix
from nanofolks.llm.local import needs_amx_guard

FINGERPRINT = "model.gguf|123|456|llama_cpp 0.3|n_ctx 4096"


def snap(tokens: list[int], payload: bytes = b"kv") -> Snapshot:
    return Snapshot(tokens, payload * 10)


def test_shared_prefix_counts_equal_leading_tokens() -> None:
    assert shared_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert shared_prefix([1, 2], [1, 2, 3]) == 2 and shared_prefix([], [1]) == 0 and shared_prefix([9], [1]) == 0


def test_the_state_sharing_the_longest_prefix_is_chosen_from_any_slot() -> None:
    states = PrefixStates(FINGERPRINT, None)
    states.put("leader in room 1", snap([1, 2, 3, 4]))
    states.put("coder in room 1", snap([7, 8, 9]))
    assert states.best("leader in room 1", [1, 2, 3, 4, 5]) == (states._ram["leader in room 1"], 4)
    assert states.best("coder in room 1", [7, 8, 1]) == (states._ram["coder in room 1"], 2)
    # The leader in a new room shares its persona with its state from room 1.
    assert states.best("leader in room 2", [1, 2, 6])[1] == 2
    assert states.best("leader in room 2", [5, 5]) == (None, 0)


def test_ram_keeps_the_most_recently_used_states_within_its_budget() -> None:
    states = PrefixStates(FINGERPRINT, None, ram_bytes=100)
    states.put("a", Snapshot([1], b"x" * 40))
    states.put("b", Snapshot([2], b"x" * 40))
    states.best("a", [1])  # a is used again: b is now the oldest
    states.put("c", Snapshot([3], b"x" * 40))
    assert list(states._ram) == ["a", "c"]


def test_states_are_written_at_flush_and_read_by_the_next_process(tmp_path: Path) -> None:
    first = PrefixStates(FINGERPRINT, tmp_path)
    first.put("leader in room 1", snap([1, 2, 3], b"state"))
    assert not list(tmp_path.glob("*.kv"))  # nothing is written per turn
    first.flush()
    assert len(list(tmp_path.glob("*.kv"))) == 1
    second = PrefixStates(FINGERPRINT, tmp_path)
    found, shared = second.best("leader in room 1", [1, 2, 3, 4])
    assert shared == 3 and found == snap([1, 2, 3], b"state")


def test_a_state_dropped_from_ram_is_kept_on_disk(tmp_path: Path) -> None:
    states = PrefixStates(FINGERPRINT, tmp_path, ram_bytes=50)
    states.put("a", Snapshot([1], b"x" * 40))
    states.put("b", Snapshot([2], b"x" * 40))
    assert list(states._ram) == ["b"] and states.path("a").is_file()
    assert states.best("a", [1])[1] == 1  # read back from its file


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not a state file", "bad header", "empty"])
def test_a_corrupt_file_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    writer = PrefixStates(FINGERPRINT, tmp_path)
    writer.put("s", snap([1, 2, 3]))
    writer.flush()
    path = writer.path("s")
    raw = path.read_bytes()
    path.write_bytes({
        "truncated": raw[:-5],
        "flipped byte": raw[:-3] + bytes([raw[-3] ^ 0xFF]) + raw[-2:],
        "not a state file": b"hello world" * 10,
        "bad header": MAGIC + (12).to_bytes(4, "little") + b"{not json!!}" + raw[len(MAGIC) + 4:],
        "empty": b"",
    }[damage])
    reader = PrefixStates(FINGERPRINT, tmp_path)
    assert reader.best("s", [1, 2, 3]) == (None, 0)
    reader.put("s", snap([1, 2, 3, 4]))
    reader.flush()
    assert PrefixStates(FINGERPRINT, tmp_path).best("s", [1, 2, 3, 4])[1] == 4


@pytest.mark.parametrize("other", ["model.gguf|999|456|llama_cpp 0.3|n_ctx 4096",  # the model file changed
                                   "model.gguf|123|456|llama_cpp 0.4|n_ctx 4096",  # another llama.cpp build
                                   "model.gguf|123|456|llama_cpp 0.3|n_ctx 2048"])  # another context size
def test_a_state_made_by_another_model_build_or_context_is_stale(tmp_path: Path, other: str) -> None:
    writer = PrefixStates(other, tmp_path)
    writer.put("s", snap([1, 2, 3]))
    writer.flush()
    assert PrefixStates(FINGERPRINT, tmp_path).best("s", [1, 2, 3]) == (None, 0)


def test_the_directory_is_kept_under_its_budget_newest_first(tmp_path: Path) -> None:
    states = PrefixStates(FINGERPRINT, tmp_path, disk_bytes=1000)
    for i in range(5):
        states.put(f"slot {i}", Snapshot([i], b"x" * 300))
        states.flush()
    kept = sorted(tmp_path.glob("*.kv"))
    assert len(kept) == 2 and states.path("slot 4") in kept


def test_an_unwritable_directory_costs_the_warm_start_only(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    states = PrefixStates(FINGERPRINT, blocker / "states")
    states.put("s", snap([1]))
    states.flush()  # logged, not raised
    assert states.best("s", [1])[1] == 1


def test_the_amx_guard_applies_only_to_builds_with_amx_on_cpus_advertising_it() -> None:
    flags = "fpu sse4_2 avx2 amx_bf16 amx_tile amx_int8"
    assert needs_amx_guard(flags, build_has_amx=True)
    assert not needs_amx_guard(flags, build_has_amx=False)  # the portable build keeps repacking
    assert not needs_amx_guard("fpu sse4_2 avx2", build_has_amx=True)
