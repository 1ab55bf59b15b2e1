"""Small text helpers shared by the edge (inbound messages), the prompt and the tools."""

from __future__ import annotations


def valid_text(text: str) -> str:
    """`text` as valid Unicode: a lone surrogate (JSON allows "\\ud800") becomes U+FFFD, a split pair is
    joined. SQLite, the models and the platforms all refuse text that cannot be encoded as UTF-8."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text (where a question, or an error, usually is), with a marker."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"
