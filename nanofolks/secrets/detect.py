"""Find secrets in text by their real formats: API keys, tokens, private keys, passwords in URLs and
`password=` style assignments. Look-alikes (UUIDs, commit hashes, sha256 sums, base64 images, SKUs,
phone numbers, the word "token") are left alone.

Speed: each rule names literal anchors ("ghp_", "sk-", "://"...) and its regular expression starts with
one (a literal prefix is what Python's regex engine searches fast). A rule runs only when an anchor is in
the text; case-insensitive rules try their pattern only where an anchor occurs. A typical message costs
tens of microseconds; see bench/secrets_bench.py for 100 KB."""

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
    anchors: tuple[str, ...]  # one of them must be in the text
    pattern: re.Pattern[str]  # starts with a literal (fast to search); group "s" is the secret, else the whole match
    # Case-insensitive rules (`password=`, `Bearer`) look for their anchors as written, in capitals and
    # capitalised (no lower-cased copy of the text: 2 ms per 100 KB of non-ASCII text), and try the
    # pattern only where an anchor is.
    nocase: bool = False
    left: re.Pattern[str] | None = None  # what must come just before a match (then part of it), ending in \Z
    check: Callable[[str, str], bool] | None = None  # (secret, whole text) -> really a secret?
    spellings: tuple[str, ...] = ()  # the anchors as looked for
    near: int = 0  # > 0: the pattern is searched only this many characters around each anchor


def _spellings(anchors: tuple[str, ...], nocase: bool) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for a in anchors for v in ((a, a.upper(), a.capitalize()) if nocase else (a,))))


def _rule(kind: str, label: str, anchors: str | tuple[str, ...], pattern: str, *, nocase: bool = False,
          left: str = "", check: Callable[[str, str], bool] | None = None, near: int = 0) -> Rule:
    flags = re.IGNORECASE if nocase else 0
    anchors = (anchors,) if isinstance(anchors, str) else anchors
    return Rule(kind, label, anchors, re.compile(pattern, flags), nocase,
                re.compile(left + r"\Z", flags) if left else None, check, _spellings(anchors, nocase), near)


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
          r"secret[\w .-]{0,20}?[\"']?\s*[:=]?\s*[\"']?(?P<s>[a-z0-9+/]{40})(?![a-z0-9+/=])", nocase=True,
          check=_mixed_base64),
    _rule("aws_secret_access_key", "AWS secret access key", ("AKIA", "ASIA"),  # pasted with its key id
          rf"(?<![{_B64}])[{_B64}]{{40}}(?![{_B64}=])", check=_mixed_base64, near=200),
    _rule("google_api_key", "Google API key", "AIza", r"AIza[0-9A-Za-z_-]{35}"),
    _rule("stripe_key", "Stripe key", "k_live_", r"k_live_[0-9A-Za-z]{20,}", left=r"(?<![\w-])[sr]"),
    _rule("sendgrid_api_key", "SendGrid API key", "SG.", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    _rule("twilio_api_key", "Twilio API key", "SK", r"SK[0-9a-f]{32}(?![A-Za-z0-9])", left=_ALNUM_EDGE),
    _rule("twilio_auth_token", "Twilio auth token", "twilio",
          r"twilio[\w .:=\"'-]{0,40}?(?<![a-z0-9])(?P<s>[0-9a-f]{32})(?![a-z0-9])", nocase=True),
    _rule("telegram_bot_token", "Telegram bot token", ":AA", r":AA[A-Za-z0-9_-]{33}(?![\w-])",
          left=r"(?<!\d)\d{8,10}"),
    _rule("discord_bot_token", "Discord bot token", ".", r"\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}(?![\w-])",
          left=r"(?<![\w-])[MNO][A-Za-z0-9_-]{23,27}"),
    _rule("jwt", "JSON Web Token", "eyJ", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _rule("url_password", "password in a URL", "://",
          r"://[^\s/:@\"'<>]*:(?P<s>[^\s/@\"'<>]{1,200})@(?=[\w\[])", check=_not_placeholder),
    _rule("bearer_token", "bearer token", "bearer", r"bearer\s+(?P<s>[a-z0-9._~+/-]{20,}=*)", nocase=True,
          left=r"(?<![a-z])", check=_not_placeholder),
    # `password=...`, `db_password: ...`, `api_key = "..."`, `secret: ...`; a bare `key:` is too common to count.
    _rule("password", "password", ("pass", "pwd", "secret", "token", "key"),
          r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|key)[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?P<s>[^\s\"',;`]{6,200})",
          nocase=True, left=r"(?<![a-z0-9])(?:[a-z][a-z0-9]*_)?(?:api_?|access_?|private_?|secret_?)?",
          check=_password_like),
)


def find(text: str) -> list[Finding]:
    """Every secret in `text`, in order, none overlapping (the earlier rule wins a tie)."""
    present: dict[str, bool] = {}  # anchor -> in the text (rules share anchors: each is looked for once)
    # ASCII text (most of it) is lower-cased in one cheap pass, at the same offsets: a case-insensitive
    # anchor is then looked for once, not in three spellings.
    lowered = text.lower() if text.isascii() else None
    present_lower: dict[str, bool] = {}
    found: list[tuple[int, int, Finding]] = []
    for priority, rule in enumerate(RULES):
        if rule.nocase and lowered is not None:
            where = lowered
            spellings = [a for a in rule.anchors if _present(present_lower, a, lowered)]
        else:
            where = text
            spellings = [a for a in rule.spellings if _present(present, a, text)]
        if not spellings:
            continue
        for match in _matches(rule, spellings, text, where):
            whole = match.start()
            if rule.left is not None:
                before = rule.left.search(text, max(0, whole - 48), whole)
                if before is None:
                    continue
                whole = before.start()
            start, end = match.span("s") if "s" in rule.pattern.groupindex else (whole, match.end())
            secret = text[start:end]
            if rule.check is not None and not rule.check(secret, text):
                continue
            kind = _assignment_kind(text[whole:match.start("s")]) if rule.kind == "password" else rule.kind
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


def _present(seen: dict[str, bool], anchor: str, text: str) -> bool:
    if anchor not in seen:
        seen[anchor] = anchor in text
    return seen[anchor]


def _matches(rule: Rule, spellings: list[str], text: str, where: str) -> Iterator[re.Match[str]]:
    """The pattern's matches: searched through the text, or for a case-insensitive rule tried only where
    one of its anchors' spellings occurs in `where` (the text or its lower case; in order, once per place)."""
    if rule.near:
        seen: set[int] = set()
        for spelling in spellings:
            at = text.find(spelling)
            while at != -1:
                for match in rule.pattern.finditer(text, max(0, at - rule.near), at + rule.near):
                    if match.start() not in seen:
                        seen.add(match.start())
                        yield match
                at = text.find(spelling, at + 1)
        return
    if not rule.nocase:
        yield from rule.pattern.finditer(text)
        return
    places = set()
    for spelling in spellings:
        at = where.find(spelling)
        while at != -1:
            places.add(at)
            at = where.find(spelling, at + 1)
    end = -1
    for at in sorted(places):
        if at < end:
            continue
        match = rule.pattern.match(text, at)
        if match is not None:
            end = match.end()
            yield match


def _assignment_kind(assignment: str) -> str:
    """`db_password = '...` is kept as db_password, `token: ...` as token."""
    key = re.match(r"[a-z0-9_]+", assignment.lower())
    return key.group() if key else "password"
