"""How a failed Telegram send is sorted (python-telegram-bot's own exceptions)."""

from __future__ import annotations

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from nanofolks.channels.telegram import _send_error


def test_a_bad_request_is_final_not_retried_forever() -> None:
    # BadRequest subclasses NetworkError in python-telegram-bot: a 400 is still a refusal, not a network problem
    error = _send_error(BadRequest("Chat not found"))
    assert not error.retryable and not error.maybe_delivered
    assert not _send_error(Forbidden("bot was blocked by the user")).retryable


def test_throttling_and_5xx_are_retried() -> None:
    throttled = _send_error(RetryAfter(3))
    assert throttled.retryable and throttled.retry_after == 3
    assert _send_error(NetworkError("Bad Gateway")).retryable
