"""Everything that follows from the schema's one secret mark (`json_schema_extra=SECRET`): which fields
hold secrets, their values in a config, and a config dump with them masked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from nanofolks.config.schema import Config

MASK = "***"


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def secret_values(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted alias key, value) of every secret field set in a config, in every section and dict."""
    for name, field in type(model).model_fields.items():
        key = f"{prefix}{field.alias or name}"
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from secret_values(value, f"{key}.")
        elif isinstance(value, dict):
            for sub, item in value.items():
                if isinstance(item, BaseModel):
                    yield from secret_values(item, f"{key}.{sub}.")
        elif isinstance(value, str) and value and is_secret(field):
            yield key, value


def masked(dump: dict[str, Any], model: type[BaseModel] = Config) -> dict[str, Any]:
    """A config dump (alias keys) with every secret field's value hidden; a `{{name}}` reference is shown,
    since it is only a name."""
    out: dict[str, Any] = {}
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    for key, value in dump.items():
        field = fields.get(key)
        sub = _model_of(field) if field is not None else None
        if sub is not None and isinstance(value, dict):
            out[key] = masked(value, sub)
        elif field is not None and (item := _dict_model_of(field)) is not None and isinstance(value, dict):
            out[key] = {k: masked(v, item) if isinstance(v, dict) else v for k, v in value.items()}
        elif field is not None and is_secret(field) and isinstance(value, str) and value:
            out[key] = value if _is_reference(value) else MASK
        else:
            out[key] = value
    return out


def field_at(keys: list[str]) -> FieldInfo | None:
    """The schema field a canonical key path (aliases) ends at, or None."""
    model: type[BaseModel] | None = Config
    field: FieldInfo | None = None
    skip_next = False
    for key in keys:
        if skip_next:  # a free key inside dict[str, Model]
            skip_next = False
            continue
        if model is None:
            return None
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        field = fields.get(key)
        if field is None:
            return None
        model = _model_of(field) or _dict_model_of(field)
        skip_next = _dict_model_of(field) is not None
    return field


def _is_reference(value: str) -> bool:
    from nanofolks.secrets.keeper import REF

    return REF.fullmatch(value.strip()) is not None


def _model_of(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _dict_model_of(field: FieldInfo) -> type[BaseModel] | None:
    args = getattr(field.annotation, "__args__", ())
    if getattr(field.annotation, "__origin__", None) is dict and len(args) == 2:
        value = args[1]
        return value if isinstance(value, type) and issubclass(value, BaseModel) else None
    return None


def raw_secrets(raw: dict[str, Any], model: type[BaseModel] = Config,
                prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(key path as written in the file, value) of every secret field in a raw config.json."""
    from nanofolks.config.loader import _find_field

    for key, value in raw.items():
        name = _find_field(model, key)
        if name is None:
            continue
        field = model.model_fields[name]
        sub, item = _model_of(field), _dict_model_of(field)
        if sub is not None and isinstance(value, dict):
            yield from raw_secrets(value, sub, (*prefix, key))
        elif item is not None and isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict):
                    yield from raw_secrets(v, item, (*prefix, key, k))
        elif is_secret(field) and isinstance(value, str) and value:
            yield (*prefix, key), value


def plain_secrets(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Secret fields written in clear in config.json (not a {{reference}}, not an ${ENV_VAR})."""
    return [(".".join(path), value) for path, value in raw_secrets(raw)
            if not _is_reference(value) and "${" not in value]


def references(raw: dict[str, Any]) -> dict[str, list[str]]:
    """Secret name -> the config keys that refer to it as {{name}}."""
    from nanofolks.secrets.keeper import REF

    used: dict[str, list[str]] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str):
            for match in REF.finditer(node):
                used.setdefault(match.group(1), []).append(key)

    walk(raw, "")
    return used


def reference_name(key: str) -> str:
    """The vault name for a config key: providers.openai.apiKey -> openai_api_key,
    channels.slack.botToken -> slack_bot_token."""
    import re

    parts = key.split(".")[1:] or key.split(".")
    return "_".join(re.sub(r"(?<!^)(?=[A-Z])", "_", p).lower().replace("-", "_") for p in parts)
