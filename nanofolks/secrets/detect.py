"""Find secrets in text by their real formats: API keys, tokens, private keys, passwords in URLs and
`password=` style assignments. Look-alikes (UUIDs, commit hashes, sha256 sums, base64 images, SKUs,
phone numbers, the word "token") are left alone.

Speed: each rule names literal anchors ("ghp_", "sk-", "://"...). A rule's regular expression runs only
when one of its anchors is in the text, and a substring test is a fast scan, so a typical message costs
a few microseconds and 100 KB of ordinary text about a millisecond (bench/secrets_bench.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_B64 = "A-Za-z0-9+/"
_PLACEHOLDER = re.compile(r"your|xxxx|\*\*\*|<|>|\{\{|\$\{|example|changeme|redacted|\.\.\.", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    kind: str  # also the name it is kept under in the vault: github_token, openai_api_key...
    label: str  # for people: "GitHub token"
    start: int  # where the secret itself is (an assignment's value, a URL's password)
    end: int

    def value(self, text: str) -> str:
        return text[self.start:self.end]


@dataclass(frozen=True)
class Rule:
    kind: str
    label: str
    anchors: tuple[str, ...]  # one of them must be in the text (in its lower-cased form when `lower`)
    pattern: re.Pattern[str]  # starts with a literal (fast to search); group "s" is the secret, else the whole match
    lower: bool = False  # the pattern is written in lower case and runs on the lower-cased text
    left: re.Pattern[str] | None = None  # what must come just before a match (then part of it), ending in \Z
    check: Callable[[str, str], bool] | None = None  # (secret, whole text) -> really a secret?
    folded: re.Pattern[str] | None = None  # the case-insensitive pattern, for text whose lower case is longer
    at_anchor: bool = False  # match only where an anchor occurs (the pattern starts with it): for common words


def _rule(kind: str, label: str, anchors: str | tuple[str, ...], pattern: str, *, lower: bool = False,
          left: str = "", check: Callable[[str, str], bool] | None = None, at_anchor: bool = False) -> Rule:
    return Rule(kind, label, (anchors,) if isinstance(anchors, str) else anchors, re.compile(pattern), lower,
                re.compile(left + r"\Z") if left else None, check,
                re.compile(pattern, re.IGNORECASE) if lower else None, at_anchor)


def _not_placeholder(secret: str, _text: str) -> bool:
    return not _PLACEHOLDER.search(secret)


def _password_like(secret: str, text: str) -> bool:
    """An assigned value that is a secret, not prose: 'password: required' or 'secret: sauce' are words."""
    if not _not_placeholder(secret, text):
        return False
    return not (secret.isalpha() and secret.islower() and len(secret) < 16)


def _mixed_base64(secret: str, _text: str) -> bool:
    """An AWS secret key is 40 base64 characters in mixed case with digits; a commit hash is only hex."""
    return (any(c.islower() for c in secret) and any(c.isupper() for c in secret)
            and any(c.isdigit() for c in secret))


_NOT_WORD = r"(?<![\w-])"
_ALNUM_EDGE = r"(?<![A-Za-z0-9])"

# Order is priority: where two rules match the same characters, the earlier one names the secret.
RULES: tuple[Rule, ...] = (
    _rule("private_key", "private key", "-----BEGIN",
          r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
          r"(?s:.*?)(?:-----END \1-----|\Z)"),
    _rule("anthropic_api_key", "Anthropic API key", "sk-ant-", r"sk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_-]{40,}"),
    _rule("openrouter_api_key", "OpenRouter API key", "sk-or-", r"sk-or-v\d-[a-f0-9]{64}"),
    _rule("openai_api_key", "OpenAI API key", ("sk-proj-", "sk-svcacct-", "sk-admin-"),
          r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"),
    _rule("deepseek_api_key", "DeepSeek API key", "sk-", r"sk-[a-f0-9]{32}(?![\w-])", left=_NOT_WORD),
    _rule("openai_api_key", "OpenAI API key", "sk-", r"sk-[A-Za-z0-9]{40,}(?![\w-])", left=_NOT_WORD),
    _rule("groq_api_key", "Groq API key", "gsk_", r"gsk_[A-Za-z0-9]{48,}"),
    _rule("huggingface_token", "Hugging Face token", "hf_", r"hf_[A-Za-z0-9]{30,}", left=_ALNUM_EDGE),
    _rule("github_token", "GitHub token", "github_pat_", r"github_pat_[A-Za-z0-9_]{60,}"),
    _rule("github_token", "GitHub token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"gh[pousr]_[A-Za-z0-9]{36,}"),
    _rule("gitlab_token", "GitLab token", "glpat-", r"glpat-[A-Za-z0-9_-]{20,}"),
    _rule("npm_token", "npm token", "npm_", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", left=_ALNUM_EDGE),
    _rule("slack_app_token", "Slack app token", "xapp-", r"xapp-\d-[A-Za-z0-9-]{20,}"),
    _rule("slack_token", "Slack token", "xox", r"xox[abposer]-[A-Za-z0-9-]{20,}"),
    _rule("aws_access_key_id", "AWS access key id", ("AKIA", "ASIA"), r"A[KS]IA[A-Z0-9]{16}(?![A-Z0-9])",
          left=r"(?<![A-Z0-9])"),
    _rule("aws_secret_access_key", "AWS secret access key", "secret",
          r"secret[\w .-]{0,20}?[\"']?\s*[:=]?\s*[\"']?(?P<s>[a-z0-9+/]{40})(?![a-z0-9+/=])", lower=True,
          check=_mixed_base64),
    _rule("aws_secret_access_key", "AWS secret access key", ("AKIA", "ASIA"),
          rf"(?<![{_B64}])[{_B64}]{{40}}(?![{_B64}=])", check=_mixed_base64),
    _rule("google_api_key", "Google API key", "AIza", r"AIza[0-9A-Za-z_-]{35}"),
    _rule("stripe_key", "Stripe key", "k_live_", r"k_live_[0-9A-Za-z]{20,}", left=r"(?<![\w-])[sr]"),
    _rule("sendgrid_api_key", "SendGrid API key", "SG.", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    _rule("twilio_api_key", "Twilio API key", "SK", r"SK[0-9a-f]{32}(?![A-Za-z0-9])", left=_ALNUM_EDGE),
    _rule("twilio_auth_token", "Twilio auth token", "twilio",
          r"twilio[\w .:=\"'-]{0,40}?(?<![a-z0-9])(?P<s>[0-9a-f]{32})(?![a-z0-9])", lower=True),
    _rule("telegram_bot_token", "Telegram bot token", ":AA", r":AA[A-Za-z0-9_-]{33}(?![\w-])",
          left=r"(?<!\d)\d{8,10}"),
    _rule("discord_bot_token", "Discord bot token", ".", r"\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}(?![\w-])",
          left=r"(?<![\w-])[MNO][A-Za-z0-9_-]{23,27}"),
    _rule("jwt", "JSON Web Token", "eyJ", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _rule("url_password", "password in a URL", "://",
          r"://[^\s/:@\"'<>]*:(?P<s>[^\s/@\"'<>]{1,200})@(?=[\w\[])", check=_not_placeholder),
    _rule("bearer_token", "bearer token", "bearer", r"bearer\s+(?P<s>[a-z0-9._~+/-]{20,}=*)", lower=True,
          left=r"(?<![a-z])", check=_not_placeholder),
    # `password=...`, `db_password: ...`, `api_key = "..."`, `secret: ...`; a bare `key:` is too common to count.
    _rule("password", "password", ("pass", "pwd", "secret", "token", "key"),
          r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|key)[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?P<s>[^\s\"',;`]{6,200})",
          lower=True, left=r"(?<![a-z0-9])(?:[a-z][a-z0-9]*_)?(?:api_?|access_?|private_?|secret_?)?",
          check=_password_like, at_anchor=True),
)


def find(text: str) -> list[Finding]:
    """Every secret in `text`, in order, none overlapping (the earlier rule wins a tie)."""
    lowered = text.lower()
    same_length = len(lowered) == len(text)  # else (rare Unicode) the case-insensitive patterns run on text
    found: list[tuple[int, int, Finding]] = []
    for priority, rule in enumerate(RULES):
        if not any(anchor in (lowered if rule.lower else text) for anchor in rule.anchors):
            continue
        haystack, pattern = text, rule.pattern
        if rule.lower:
            haystack, pattern = (lowered, rule.pattern) if same_length else (text, rule.folded or rule.pattern)
        for match in _matches(rule, pattern, haystack):
            whole = match.start()
            if rule.left is not None:
                before = rule.left.search(haystack, max(0, whole - 48), whole)
                if before is None:
                    continue
                whole = before.start()
            start, end = match.span("s") if "s" in pattern.groupindex else (whole, match.end())
            secret = text[start:end]
            if rule.check is not None and not rule.check(secret, text):
                continue
            kind = _assignment_kind(haystack[whole:match.start("s")]) if rule.kind == "password" else rule.kind
            if kind == "key":
                continue
            found.append((start, priority, Finding(kind, rule.label, start, end)))
    found.sort(key=lambda item: (item[0], item[1]))
    kept: list[Finding] = []
    for _, _, finding in found:
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept


def _matches(rule: Rule, pattern: re.Pattern[str], haystack: str) -> Iterator[re.Match[str]]:
    if not rule.at_anchor:
        yield from pattern.finditer(haystack)
        return
    for anchor in rule.anchors:
        at = haystack.find(anchor)
        while at != -1:
            match = pattern.match(haystack, at)
            if match is not None:
                yield match
            at = haystack.find(anchor, at + 1)


def _assignment_kind(assignment: str) -> str:
    """`db_password = '...` is kept as db_password, `token: ...` as token."""
    key = re.match(r"[a-z0-9_]+", assignment.lower())
    return key.group() if key else "password"
