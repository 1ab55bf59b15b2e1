"""The configuration schema. Keys are camelCase in config.json; snake_case is accepted too."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ProviderConfig(Section):
    api_key: str = ""
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


class AgentDefaults(Section):
    model: str = LOCAL_MODEL
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_iterations: int = Field(default=8, ge=1, le=50)
    context_window: int | None = Field(default=None, ge=512)


class BotSettings(Section):
    """Per-bot overrides, keyed by handle under agents.bots."""

    model: str | None = None
    tool_mode: Literal["auto", "native", "text"] = "auto"


class AgentsConfig(Section):
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    bots: dict[str, BotSettings] = Field(default_factory=dict)


class CrewConfig(Section):
    team: str = "pirate_crew"
    single: bool = False


class OrchestratorConfig(Section):
    turn_budget: int = Field(default=8, ge=1, le=64)
    max_concurrent_turns: int = Field(default=4, ge=1)
    history_messages: int = Field(default=30, ge=0)
    llm_intent: bool = True


class ToolsConfig(Section):
    exec_enabled: bool = False
    exec_timeout: float = Field(default=30.0, gt=0)
    web_fetch_max_bytes: int = Field(default=1_000_000, gt=0)
    web_fetch_timeout: float = Field(default=20.0, gt=0)
    web_fetch_allow_private: bool = False


class Config(Section):
    workspace: str = ""
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    crew: CrewConfig = Field(default_factory=CrewConfig)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
