"""A labelled set for the secret detector: messages holding a secret of every supported format (with the
secret and its kind), and look-alikes that must stay untouched. The secrets are random strings in each
provider's published format, generated from a fixed seed so the set is the same on every run."""

from __future__ import annotations

import random
import string

_rng = random.Random(13)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
B64 = ALNUM + "+/"


def r(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _pem(kind: str) -> str:
    body = "\n".join(r(64, B64) for _ in range(5))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


_openai_legacy = f"sk-{r(20)}T3BlbkFJ{r(20)}"
_jwt = f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{r(40, URLSAFE)}.{r(43, URLSAFE)}"
_aws_secret = r(18, B64) + "Ab3/" + r(18, B64)

# (kind, message, the secret in it)
POSITIVES: list[tuple[str, str, str]] = [
    ("openai_api_key", "use this key: {s}", f"sk-proj-{r(74, URLSAFE)}T3BlbkFJ{r(74, URLSAFE)}"),
    ("openai_api_key", "my old key {s} still works?", _openai_legacy),
    ("openai_api_key", "OPENAI_API_KEY={s}", f"sk-svcacct-{r(60, URLSAFE)}"),
    ("anthropic_api_key", "here: {s}", f"sk-ant-api03-{r(93, URLSAFE)}AA"),
    ("openrouter_api_key", "openrouter {s} thanks", f"sk-or-v1-{r(64, HEX)}"),
    ("groq_api_key", "groq key is {s}", f"gsk_{r(52)}"),
    ("deepseek_api_key", "deepseek: {s}", f"sk-{r(32, HEX)}"),
    ("huggingface_token", "HF token {s} for the download", f"hf_{r(34, string.ascii_letters)}"),
    ("github_token", "Create the PR with token {s}", f"ghp_{r(36)}"),
    ("github_token", "gh auth login --with-token <<< {s}", f"gho_{r(36)}"),
    ("github_token", "fine-grained one: {s}", f"github_pat_11{r(20, string.ascii_uppercase + string.digits)}_{r(59)}"),
    ("gitlab_token", "gitlab {s}", f"glpat-{r(20, URLSAFE)}"),
    ("npm_token", "//registry.npmjs.org/:_authToken={s}", f"npm_{r(36)}"),
    ("slack_token", "bot token {s}", f"xoxb-{r(12, string.digits)}-{r(13, string.digits)}-{r(24)}"),
    ("slack_token", "user token {s}", f"xoxp-{r(12, string.digits)}-{r(12, string.digits)}-{r(13, string.digits)}-{r(32, HEX)}"),
    ("slack_app_token", "app token {s}", f"xapp-1-A{r(10, string.ascii_uppercase + string.digits)}-{r(13, string.digits)}-{r(64, HEX)}"),
    ("aws_access_key_id", "aws key id {s}", f"AKIA{r(16, string.ascii_uppercase + string.digits)}"),
    ("aws_secret_access_key", "aws_secret_access_key = {s}", _aws_secret),
    ("aws_secret_access_key", "AKIA2E0A8F3B244C9986 and its secret {s}", r(12, B64) + "xY7/" + r(24, B64)),
    ("google_api_key", "maps key {s}", f"AIza{r(35, URLSAFE)}"),
    ("stripe_key", "stripe live {s}", f"sk_live_{r(24)}"),
    ("stripe_key", "restricted {s}", f"rk_live_{r(99)}"),
    ("sendgrid_api_key", "sendgrid {s}", f"SG.{r(22, URLSAFE)}.{r(43, URLSAFE)}"),
    ("twilio_api_key", "twilio api key {s}", f"SK{r(32, HEX)}"),
    ("twilio_auth_token", "Twilio auth token: {s}", r(32, HEX)),
    ("telegram_bot_token", "the bot token is {s}", f"{r(10, string.digits)}:AA{r(33, URLSAFE)}"),
    ("discord_bot_token", "discord bot {s}", f"MT{r(24)}.{r(6, URLSAFE)}.{r(38, URLSAFE)}"),
    ("jwt", "Authorization cookie {s}", _jwt),
    ("private_key", "my key:\n{s}\nthanks", _pem("RSA PRIVATE KEY")),
    ("private_key", "{s}", _pem("OPENSSH PRIVATE KEY")),
    ("private_key", "ec key {s}", _pem("EC PRIVATE KEY")),
    ("url_password", "DATABASE_URL=postgres://app:{s}@db.internal:5432/app", f"{r(16)}"),
    ("url_password", "connect with mysql://root:{s}@localhost/shop", f"p4ss-{r(8)}"),
    ("url_password", "curl https://admin:{s}@example.org/api", "S3cure!pass"),
    ("url_password", "redis://:{s}@cache:6379/0", r(24)),
    ("bearer_token", "Authorization: Bearer {s}", r(40, URLSAFE)),
    ("password", "password={s}", "hunter2hunter2"),
    ("password", "my password: {s}", "Tr0ub4dor&3"),
    ("secret", "secret: {s}", r(20)),
    ("db_password", "db_password = '{s}'", "n0t-so-secret"),
    ("client_secret", 'client_secret: "{s}"', r(30, URLSAFE)),
    ("api_key", "api_key={s}", r(32, HEX)),
    ("github_token", "please clone with https://x-access-token:{s}@github.com/org/repo.git", f"ghs_{r(36)}"),
]

LOOKALIKES: list[str] = [
    "The request id is 123e4567-e89b-12d3-a456-426614174000, can you check it?",
    "uuid 9f8b2c1e-4d3a-4b5c-8e7f-0a1b2c3d4e5f",
    "Fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b on main.",
    "git cherry-pick a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "short hash 4b825dc, see PR #1234",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256sum says 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae  foo.tar.gz",
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "![cat](data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDQ)",
    "How does the token bucket rate limiter work?",
    "What is a good password policy for a small team?",
    "Reset your password: click the link in the email.",
    "The secret: practise every day.",
    "password: required, at least 12 characters",
    "Token limit reached, try a shorter prompt.",
    "SKU 88-4521-XL is out of stock; SKU-20391 too.",
    "Order SK-1024-BLUE and SK-2048-RED",
    "Call me at +1 555 222 3333 or +44 20 7946 0958.",
    "My number is 0612345678, Telegram id 123456789.",
    "Meet at 12:30, room 4:15 is taken",
    "See https://example.com:8080/path?q=1#frag for details",
    "git clone git@github.com:nanofolks/nanofolks.git",
    "email me at ann.lee@example.org",
    "pip install requests==2.31.0 && npm i left-pad@1.3.0",
    "Use ${OPENAI_API_KEY} in the config, or {{openai_api_key}}",
    "api_key: YOUR_API_KEY_HERE",
    "export GITHUB_TOKEN=<your token>",
    "risk-free, task-based, desk-sharing plans",
    "The JWT header starts with eyJ, that is base64 for {\"",
    "Public key:\n-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    "version 1.2.3-beta.4+build.5678",
    "IBAN DE89 3704 0044 0532 0130 00",
    "The hex colour #1e90ff and rgb(30, 144, 255)",
    "python -c 'import secrets; print(secrets.token_hex(16))'",
    "AKIA is the prefix of AWS access key ids",
    "bypass: enabled, passthrough: 2",
    "The keyword: example appears twice",
    "monkey=banana, donkey=carrot",
    "Discord message link https://discord.com/channels/123456789012345678/876543210987654321/1122334455667788",
    "docker pull ghcr.io/org/app@sha256:4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1",
    "Write a function called tokenize(text) and a class PasswordHasher.",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop",
    "the ratio was 1e-9 and sk-learn is spelled scikit-learn",
]
