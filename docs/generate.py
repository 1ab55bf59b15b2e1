"""Write the generated references: docs/reference/config.md from the pydantic schema, docs/reference/cli.md from
the typer app. `python docs/generate.py` rewrites them; `--check` exits 1 when either is stale (a test runs it)."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

import typer
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanofolks.cli.app import app  # noqa: E402
from nanofolks.config.schema import Config  # noqa: E402
from nanofolks.config.secret_fields import is_secret  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "reference"


def config_reference() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the schema (`nanofolks/config/schema.py`) by `python docs/generate.py`; do not edit.",
             "", "Keys are camelCase in `config.json` (snake_case is accepted too). Any key can be set with",
             "`nanofolks config set KEY VALUE` or the environment: `NANOFOLKS_SECTION__KEY` (for example",
             "`NANOFOLKS_AGENTS__DEFAULTS__MODEL`). A field marked *secret* is kept in the vault by `config set`",
             "and masked everywhere; write `{{name}}` to refer to a vault entry.", ""]
    for key, model in _sections(Config, ""):
        lines += [f"## `{key or 'top level'}`", ""]
        if model.__doc__ and model.__doc__ != BaseModel.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += ["| key | type | default | notes |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            if _submodel(field.annotation):
                continue
            alias = field.alias or name
            default = "" if field.is_required() else repr(field.get_default(call_default_factory=True))
            notes = "; ".join(n for n in [field.description or "", "secret" if is_secret(field) else "",
                                          _limits(field.metadata)] if n)
            full = f"{key}.{alias}" if key else alias
            lines.append(f"| `{full}` | {_type_name(field.annotation)} | `{default}` | {notes} |".replace("``", ""))
        lines.append("")
    return "\n".join(lines)


def _sections(model: type[BaseModel], key: str) -> typing.Iterator[tuple[str, type[BaseModel]]]:
    if any(not _submodel(f.annotation) for f in model.model_fields.values()):
        yield key, model
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None:
            alias = field.alias or name
            path = f"{key}.{alias}" if key else alias
            if typing.get_origin(field.annotation) is dict:
                path += ".<name>"
            yield from _sections(sub, path)


def _submodel(annotation: object) -> type[BaseModel] | None:
    """The model a field nests: the field's own type, or the value type of a dict of models."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is dict:
        value = typing.get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value
    return None


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return "none" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _limits(metadata: list[object]) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "pattern": "matches"}
    found = [f"{words[attr]} {getattr(m, attr)}" for m in metadata for attr in words if hasattr(m, attr)]
    return ", ".join(found).replace("|", "\\|")


def cli_reference() -> str:
    root = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             "Generated from the typer app (`nanofolks/cli/`) by `python docs/generate.py`; do not edit.", ""]
    for path, command in _commands(root, ["nanofolks"]):
        ctx = command.make_context(" ".join(path), [], resilient_parsing=True, terminal_width=100,
                                   max_content_width=100)  # the same text on any terminal
        lines += [f"## `{' '.join(path)}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(lines)


def _commands(command: typing.Any, path: list[str]) -> typing.Iterator[tuple[list[str], typing.Any]]:
    yield path, command
    for name in sorted(getattr(command, "commands", {}) or {}):
        yield from _commands(command.commands[name], [*path, name])


def main(check: bool) -> int:
    stale = []
    for name, text in (("config.md", config_reference()), ("cli.md", cli_reference())):
        target = REFERENCE / name
        if target.is_file() and target.read_text() == text:
            continue
        stale.append(name)
        if not check:
            REFERENCE.mkdir(exist_ok=True)
            target.write_text(text)
    if check and stale:
        print(f"stale: docs/reference/{', docs/reference/'.join(stale)}; run `python docs/generate.py`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
