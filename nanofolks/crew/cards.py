"""Read and edit the crew's Markdown cards: a `key: value` frontmatter between `---` lines, then a body."""

from __future__ import annotations

from pathlib import Path


def parse_card(text: str) -> tuple[dict[str, str], str]:
    """Split a card into its frontmatter fields and its body. A card without frontmatter is all body."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text.strip()
    fields: dict[str, str] = {}
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return fields, "\n".join(lines[i + 1 :]).strip()
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip().lower()] = value.strip()
    return {}, text.strip()  # unterminated frontmatter: treat the file as plain text


def read_card(path: Path) -> tuple[dict[str, str], str]:
    if not path.exists():
        return {}, ""
    return parse_card(path.read_text(encoding="utf-8"))


def set_field(path: Path, key: str, value: str) -> None:
    """Change one frontmatter field in place, keeping the rest of the file as the user wrote it."""
    fields, body = read_card(path)
    fields[key] = value
    head = "\n".join(f"{k}: {v}" for k, v in fields.items())
    path.write_text(f"---\n{head}\n---\n{body}\n", encoding="utf-8")


def split_list(value: str, sep: str = ",") -> list[str]:
    return [item.strip() for item in value.split(sep) if item.strip()]
