"""Who a person is to the crew: the platform and their sender id there ("telegram:12345"), never the
display name they give, which anyone can take. The one at the terminal is the home's owner."""

from __future__ import annotations

LOCAL_OWNER = "local:owner"


def person(platform: str, sender_id: str) -> str:
    """The identity of a platform's sender: what room membership and memory know them by."""
    return f"{platform}:{sender_id}"
