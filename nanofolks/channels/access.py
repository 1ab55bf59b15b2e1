"""Who may talk to the crew, shared by every platform. Default deny:

- a sender is allowed if `allowFrom` lists their id or username, or the owner approved their pairing
  code; `"*"` in allowFrom opens the channel, explicitly;
- a stranger in a direct chat gets a pairing code and nothing else (their message reaches no room);
- in a group the crew answers only when mentioned (or replied to), and only allowed senders,
  unless the group is configured open."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from nanofolks.channels.messages import InboundMessage
from nanofolks.store.pairing import PairingLimits, PairingRefused, PairingRepo

PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: nothing to misread
CODE_LENGTH = 8
PAIRING_TTL = 3600.0  # seconds a code stays valid
# A flood of strangers cannot grow the table (the oldest code makes room), nor can one stranger take the
# slots or keep the crew busy answering.
LIMITS = PairingLimits(max_pending=20, codes_per_hour=3, repeat_after=60.0)


def new_code() -> str:
    return "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    return code.strip().upper()


@dataclass
class Decision:
    action: str  # accept | pair | ignore
    reason: str = ""
    code: str = ""


def pairing_text(platform: str, code: str) -> str:
    return (
        f"Hi! I don't know you yet, so I can't pass your message on.\n\n"
        f"Your pairing code: `{code}` (valid for one hour).\n"
        f"Ask my owner to run `nanofolks pairing approve {platform} {code}`."
    )


def is_owner(allow_from: Iterable[str], sender_id: str) -> bool:
    """The owner is the first person on the channel's allowFrom, known by the platform's sender id only: a
    display name can be set to anything, and a username can change hands."""
    entries = (str(e).strip().lstrip("@").lower() for e in allow_from)
    owner = next((e for e in entries if e and e != "*"), None)
    return owner is not None and owner == sender_id.strip().lower()


class AccessPolicy:
    def __init__(self, platform: str, allow_from: Iterable[str], open_groups: Iterable[str], pairing: PairingRepo,
                 limits: PairingLimits = LIMITS):
        self.platform = platform
        self.limits = limits
        entries = {str(e).strip().lstrip("@").lower() for e in allow_from if str(e).strip()}
        self.everyone = "*" in entries
        self.allow = entries - {"*"}
        self.open_groups = {str(g).strip() for g in open_groups}
        self.pairing = pairing

    def allowed(self, msg: InboundMessage) -> bool:
        if self.everyone or msg.sender_id.lower() in self.allow:
            return True
        if msg.sender_username and msg.sender_username.lstrip("@").lower() in self.allow:
            return True
        return self.pairing.is_approved(self.platform, msg.sender_id)  # approved while running: no restart

    def decide(self, msg: InboundMessage) -> Decision:
        """Blocking (reads the database): call through `db.run`."""
        if msg.is_group:
            if not msg.mentioned:
                return Decision("ignore", "group message without a mention")
            if "*" in self.open_groups or msg.chat_id in self.open_groups or self.allowed(msg):
                return Decision("accept")
            return Decision("ignore", f"sender {msg.sender_id} is not allowed in this group")
        if self.allowed(msg):
            return Decision("accept")
        try:
            request = self.pairing.request(self.platform, msg.sender_id, msg.sender_username, msg.chat_id,
                                           make_code=new_code, ttl=PAIRING_TTL, limits=self.limits)
        except PairingRefused as exc:
            return Decision("ignore", str(exc))
        return Decision("pair", f"stranger {msg.sender_id}", code=request.code)
