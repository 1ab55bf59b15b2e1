"""Access control: allowFrom, pairing codes (alphabet, expiry, limit), group gating."""

from __future__ import annotations

import time

import pytest

from nanofolks.channels.access import (
    CODE_LENGTH,
    PAIRING_ALPHABET,
    PAIRING_TTL,
    AccessPolicy,
    new_code,
)
from nanofolks.channels.messages import InboundMessage
from nanofolks.store.db import Database
from nanofolks.store.pairing import PairingLimits, PairingRefused, PairingRepo

LIMITS = PairingLimits(max_pending=3, codes_per_hour=3, repeat_after=60.0)


@pytest.fixture
def pairing(db: Database) -> PairingRepo:  # on each backend (tests/conftest.py)
    return PairingRepo(db)


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
    policy = AccessPolicy("telegram", ["111"], [], pairing, LIMITS)
    first = policy.decide(dm("222", "mallory"))
    assert first.action == "pair" and len(first.code) == CODE_LENGTH
    again = pairing.request("telegram", "222", "", "222", make_code=new_code, ttl=PAIRING_TTL, limits=LIMITS,
                            now=time.time() + 61)
    assert again.code == first.code
    assert pairing.approve("telegram", first.code) is not None
    assert policy.decide(dm("222")).action == "accept"  # the same running policy: no restart
    assert pairing.approve("telegram", first.code) is None  # a code works once
    assert pairing.revoke("telegram", "@mallory")
    assert policy.decide(dm("222")).action == "pair"


def test_codes_expire_after_an_hour(pairing: PairingRepo) -> None:
    made = pairing.request("telegram", "222", "", "222", make_code=new_code, ttl=PAIRING_TTL, limits=LIMITS, now=1000)
    assert pairing.approve("telegram", made.code, now=1000 + PAIRING_TTL + 1) is None
    again = pairing.request("telegram", "222", "", "222", make_code=new_code, ttl=PAIRING_TTL, limits=LIMITS,
                            now=1000 + PAIRING_TTL + 1)
    assert again.code != made.code
    assert [p.code for p in pairing.pending(now=1000 + PAIRING_TTL + 2)] == [again.code]


def test_strangers_holding_codes_never_lock_a_new_person_out(pairing: PairingRepo) -> None:
    policy = AccessPolicy("telegram", [], [], pairing, LIMITS)
    codes = [policy.decide(dm(str(u))).code for u in range(LIMITS.max_pending)]
    assert len(set(codes)) == LIMITS.max_pending
    fourth = policy.decide(dm("4000"))
    assert fourth.action == "pair"  # the channel is full: the oldest live code makes room
    live = {p.code for p in pairing.pending()}
    assert live == {*codes[1:], fourth.code}
    assert pairing.approve("telegram", codes[0]) is None  # the dropped code no longer works
    assert AccessPolicy("discord", [], [], pairing, LIMITS).decide(dm("9")).action == "pair"  # per channel


def test_a_sender_is_answered_once_a_minute_and_gets_three_codes_an_hour(pairing: PairingRepo) -> None:
    def ask(at: float) -> str:
        return pairing.request("telegram", "666", "", "666", make_code=new_code, ttl=PAIRING_TTL, limits=LIMITS,
                               now=at).code

    first = ask(1000)
    with pytest.raises(PairingRefused, match="less than 60s ago"):
        ask(1030)  # writing again at once: no second reply
    assert ask(1061) == first  # a minute later: the same code again
    made = [first]
    for n in range(2):  # each code rejected by the owner; the sender asks again
        assert pairing.reject("telegram", made[-1])
        made.append(ask(1100 + n))
    assert pairing.reject("telegram", made[-1])
    with pytest.raises(PairingRefused, match="3 pairing codes within the hour"):
        ask(1200)
    assert ask(1000 + 3601) not in made  # the next hour
    # One sender at its limit does not touch anybody else.
    assert AccessPolicy("telegram", [], [], pairing, LIMITS).decide(dm("777")).action == "pair"


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
