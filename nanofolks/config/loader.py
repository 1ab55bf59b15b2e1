"""Load and save config.json: ${VAR} substitution, NANOFOLKS_SECTION__KEY overrides, dotted-key edits."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nanofolks.config import paths
from nanofolks.config.schema import Config

ENV_PREFIX = "NANOFOLKS_"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
log = logging.getLogger(__name__)
_warned: set[str] = set()  # unknown keys already reported by this process: once per command


class ConfigError(Exception):
    """A config problem worth one clear line to the user."""


def read_raw(path: Path | None = None) -> dict[str, Any]:
    """The config file as written (no substitution), or {} when there is none."""
    path = path or paths.config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def load_config(path: Path | None = None, resolve_secrets: bool = True) -> Config:
    """The config in effect. `{{name}}` references are replaced by the vault's values unless
    `resolve_secrets` is False (for a config about to be saved again, or shown)."""
    raw = _apply_env_overrides(_substitute(read_raw(path)))
    config = validate(resolve_references(raw) if resolve_secrets else raw)
    for key in unknown_keys(config):
        if key not in _warned:
            _warned.add(key)
            # Without logging configured (the CLI), Python prints just this line on stderr.
            log.warning("warning: unknown config key %s in %s (ignored)", key, path or paths.config_path())
    return config


def resolve_references(value: Any, key: str = "") -> Any:
    """Every `{{name}}` in the config's strings replaced by the secret's value; the vault is opened only
    when there is a reference."""
    if isinstance(value, dict):
        return {k: resolve_references(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, key) for v in value]
    if isinstance(value, str) and "{{" in value:
        from nanofolks.secrets.keeper import shared_keeper
        from nanofolks.secrets.vault import VaultError

        try:
            return shared_keeper().resolve(value)
        except VaultError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    return value


def validate(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of the keys the schema does not know, as written in the file."""
    found = [prefix + key for key in model.model_extra or {}]
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = prefix + (field.alias or name)
        if isinstance(value, BaseModel):
            found += unknown_keys(value, key + ".")
        elif isinstance(value, dict):
            for free_key, item in value.items():
                if isinstance(item, BaseModel):
                    found += unknown_keys(item, f"{key}.{free_key}.")
    return found


def save_config(config: Config | dict[str, Any], path: Path | None = None) -> Path:
    path = path or paths.config_path()
    data = config.model_dump(by_alias=True) if isinstance(config, Config) else config
    paths.private_dir(path.parent)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)  # the file may hold API keys
    tmp.replace(path)
    return path


def workspace_path(config: Config) -> Path:
    return Path(config.workspace).expanduser() if config.workspace else paths.home() / "workspace"


# --- dotted keys -----------------------------------------------------------------------------------


def canonical_key(dotted: str) -> list[str]:
    """Map a dotted key (camelCase or snake_case) to the aliases used in the file; unknown keys are an error."""
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError("empty key")
    out: list[str] = []
    model: type[BaseModel] | None = Config
    free_key_then: type[BaseModel] | None = None  # inside dict[str, Model]: the next part is a free key
    for i, part in enumerate(parts):
        if free_key_then is not None:
            out.append(part)
            model, free_key_then = free_key_then, None
            continue
        if model is None:
            raise ConfigError(f"unknown config key: {'.'.join(parts[: i + 1])}")
        field_name = _find_field(model, part)
        if field_name is None:
            raise ConfigError(f"unknown config key: {'.'.join(parts[: i + 1])}")
        field = model.model_fields[field_name]
        out.append(field.alias or field_name)
        model = _submodel(field.annotation)
        free_key_then = _dict_value_model(field.annotation)
    return out


def get_value(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in canonical_key(dotted):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_value(dotted: str, text: str, path: Path | None = None) -> Any:
    """Set a dotted key from a command-line string (JSON if it parses), validate, save. Returns the value."""
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text
    set_values({dotted: value}, path)
    return value


def set_values(values: dict[str, Any], path: Path | None = None, resolve_secrets: bool = True) -> None:
    """Set dotted keys in the file as written, validate, save. Every other key stays as written: a ${VAR},
    a {{name}}, a value a NANOFOLKS_*__* variable overrides (saving the loaded Config would bake those in).
    `resolve_secrets` False validates without opening the vault."""
    keys = {dotted: canonical_key(dotted) for dotted in values}
    raw = read_raw(path)
    for dotted, value in values.items():
        set_in(raw, keys[dotted], value)
    substituted = _substitute(raw)
    try:
        Config.model_validate(resolve_references(substituted) if resolve_secrets else substituted)
    except ValidationError as exc:
        raise ConfigError(f"invalid value for {', '.join(values)}: {_describe(exc, with_key=False)}") from exc
    save_config(raw, path)


def set_in(raw: dict[str, Any], keys: list[str], value: Any) -> None:
    node = raw
    for part in keys[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(keys)}: a parent key is not an object")
    node[keys[-1]] = value


def effective_dump(config: Config) -> dict[str, Any]:
    return config.model_dump(by_alias=True)


# --- helpers ---------------------------------------------------------------------------------------


def _find_field(model: type[BaseModel], name: str) -> str | None:
    wanted = name.replace("-", "_").lower()
    for field_name, field in model.model_fields.items():
        if wanted in (field_name.lower(), (field.alias or "").lower(), field_name.replace("_", "")):
            return field_name
    return None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _dict_value_model(annotation: Any) -> type[BaseModel] | None:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is dict and len(args) == 2:
        return _submodel(args[1])
    return None


def _substitute(value: Any) -> Any:
    """Replace ${VAR} with the environment's value (empty when unset) in every string."""
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)
    return value


def _apply_env_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """NANOFOLKS_AGENTS__DEFAULTS__MODEL=x sets agents.defaults.model (value parsed as JSON when it parses)."""
    for name, text in os.environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        dotted = ".".join(name[len(ENV_PREFIX) :].lower().split("__"))
        try:
            keys = canonical_key(dotted)
        except ConfigError:
            continue  # NANOFOLKS_HOME and friends are not config keys
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = raw
        for part in keys[:-1]:
            node = node.setdefault(part, {})
        node[keys[-1]] = value
    return raw


def _describe(exc: ValidationError, with_key: bool = True) -> str:
    errors = []
    for err in exc.errors()[:3]:
        key = ".".join(str(p) for p in err["loc"])
        errors.append(f"{key}: {err['msg']}" if with_key else err["msg"])
    return "; ".join(errors)
