"""Access control: allowFrom, pairing codes (alphabet, expiry, limit), group gating."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.channels.access import (
    CODE_LENGTH,
    MAX_PENDING,
    PAIRING_ALPHABET,
    PAIRING_TTL,
    AccessPolicy,
    new_code,
)
from nanofolks.channels.messages import InboundMessage
from nanofolks.store.db import Database
from nanofolks.store.pairing import PairingRepo


@pytest.fixture
def pairing(tmp_path: Path) -> Iterator[PairingRepo]:
    db = Database(tmp_path / "t.db")
    yield PairingRepo(db)
    db.close()


def dm(user: str, username: str = "", text: str = "hi") -> InboundMessage:
    return InboundMessage("telegram", "999", chat_id=user, message_id="1", text=text, sender_id=user,
                          sender_username=username)


def group(user: str, mentioned: bool, chat: str = "-100", username: str = "") -> InboundMessage:
    return InboundMessage("telegram", "999", chat_id=chat, message_id="1", text="hi", sender_id=user,
                          sender_username=username, chat_type="group", mentioned=mentioned)


def test_codes_use_the_unambiguous_alphabet() -> None:
    codes = {new_code() for _ in range(500)}
    assert len(codes) == 500
    assert all(len(c) == CODE_LENGTH and set(c) <= set(PAIRING_ALPHABET) for c in codes)
    assert not set("".join(codes)) & set("0O1I")


@pytest.mark.parametrize(("allow", "msg", "expected"), [
    (["111"], dm("111"), "accept"),
    (["@Alice"], dm("5", "alice"), "accept"),  # usernames match without "@" and case
    (["alice"], dm("5", "ALICE"), "accept"),
    (["*"], dm("77"), "accept"),  # explicitly open
    (["111"], dm("112"), "pair"),
    ([], dm("111"), "pair"),  # default deny
    (["alice"], dm("5", ""), "pair"),  # no username, no match
])
def test_allow_from_by_id_and_username(pairing: PairingRepo, allow: list[str], msg: InboundMessage,
                                       expected: str) -> None:
    assert AccessPolicy("telegram", allow, [], pairing).decide(msg).action == expected


def test_a_stranger_gets_the_same_code_until_approved(pairing: PairingRepo) -> None:
    policy = AccessPolicy("telegram", ["111"], [], pairing)
    first = policy.decide(dm("222", "mallory"))
    assert first.action == "pair" and len(first.code) == CODE_LENGTH
    assert policy.decide(dm("222", "mallory")).code == first.code
    assert pairing.approve("telegram", first.code) is not None
    assert policy.decide(dm("222")).action == "accept"  # the same running policy: no restart
    assert pairing.approve("telegram", first.code) is None  # a code works once
    assert pairing.revoke("telegram", "@mallory")
    assert policy.decide(dm("222")).action == "pair"


def test_codes_expire_after_an_hour(pairing: PairingRepo) -> None:
    made = pairing.request("telegram", "222", "", "222", make_code=new_code, ttl=PAIRING_TTL, max_pending=3, now=1000)
    assert made is not None
    assert pairing.approve("telegram", made.code, now=1000 + PAIRING_TTL + 1) is None
    again = pairing.request("telegram", "222", "", "222", make_code=new_code, ttl=PAIRING_TTL, max_pending=3,
                            now=1000 + PAIRING_TTL + 1)
    assert again is not None and again.code != made.code
    assert [p.code for p in pairing.pending(now=1000 + PAIRING_TTL + 2)] == [again.code]


def test_at_most_three_pending_codes_per_channel(pairing: PairingRepo) -> None:
    policy = AccessPolicy("telegram", [], [], pairing)
    codes = [policy.decide(dm(str(u))).code for u in range(MAX_PENDING)]
    assert len(set(codes)) == MAX_PENDING
    fourth = policy.decide(dm("4000"))
    assert fourth.action == "ignore" and not fourth.code
    assert pairing.reject("telegram", codes[0])
    assert policy.decide(dm("4000")).action == "pair"  # a rejected code frees its slot
    assert AccessPolicy("discord", [], [], pairing).decide(dm("9")).action == "pair"  # limits are per channel


def test_groups_need_a_mention_and_an_allowed_sender(pairing: PairingRepo) -> None:
    policy = AccessPolicy("telegram", ["111"], ["-200"], pairing)
    assert policy.decide(group("111", mentioned=False)).action == "ignore"
    assert policy.decide(group("111", mentioned=True)).action == "accept"
    assert policy.decide(group("222", mentioned=True)).action == "ignore"  # strangers get no code in groups
    assert pairing.pending() == []
    assert policy.decide(group("222", mentioned=True, chat="-200")).action == "accept"  # an open group
    assert policy.decide(group("222", mentioned=False, chat="-200")).action == "ignore"  # still needs a mention
    everywhere = AccessPolicy("telegram", [], ["*"], pairing)
    assert everywhere.decide(group("5", mentioned=True, chat="-9")).action == "accept"
