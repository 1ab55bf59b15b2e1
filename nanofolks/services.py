"""Build the services a command or the gateway needs, from config and $NANOFOLKS_HOME."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from nanofolks.config.loader import load_config, workspace_path
from nanofolks.config.schema import Config
from nanofolks.crew.crew import Crew, load_crew
from nanofolks.llm.client import LLM
from nanofolks.llm.spend import SpendGuard
from nanofolks.rooms.rooms import Rooms
from nanofolks.rooms.tasks import Tasks
from nanofolks.store.backend import open_database, storage_url
from nanofolks.store.db import Database
from nanofolks.store.messages import MessageRepo
from nanofolks.store.rooms import RoomRepo
from nanofolks.store.tasks import TaskRepo
from nanofolks.store.usage import UsageRepo

if TYPE_CHECKING:
    from nanofolks.store.postgres import PgDatabase


@dataclass
class Services:
    config: Config
    db: Database | PgDatabase

    @classmethod
    def open(cls, config: Config | None = None, db_file: Path | None = None) -> Services:
        """`db_file`: this SQLite file rather than the configured storage (tests, tools on a copy)."""
        config = config or load_config()
        db = Database(db_file) if db_file else open_database(storage_url(config.storage.url))
        return cls(config=config, db=db)

    @property
    def workspace(self) -> Path:
        return workspace_path(self.config)

    @cached_property
    def crew(self) -> Crew:
        return load_crew(self.workspace)

    @cached_property
    def rooms(self) -> Rooms:
        return Rooms(RoomRepo(self.db), self.crew)

    @cached_property
    def tasks(self) -> Tasks:
        return Tasks(TaskRepo(self.db), self.rooms)

    @cached_property
    def messages(self) -> MessageRepo:
        return MessageRepo(self.db)

    @cached_property
    def usage(self) -> UsageRepo:
        return UsageRepo(self.db)

    @cached_property
    def llm(self) -> LLM:
        return LLM(self.config, self.usage, SpendGuard(self.config, self.usage))

    @cached_property
    def keeper(self):  # noqa: ANN201 - the vault, opened on first use (a keyring or a key derivation)
        from nanofolks.secrets.keeper import shared_keeper

        return shared_keeper()

    @cached_property
    def skills(self):  # noqa: ANN201 - imported lazily: discovery reads and scans every skill folder
        from nanofolks.skills.skills import Skills

        return Skills(self.workspace, self.db)

    @cached_property
    def pipeline(self):  # noqa: ANN201 - imported lazily: the CLI's room commands need no orchestrator
        from nanofolks.orchestrator.pipeline import Pipeline

        return Pipeline(self.config, self.crew, self.llm, self.messages, memory=self.memory, tasks=self.tasks,
                        keeper=self.keeper, skills=self.skills)

    @cached_property
    def memory(self):  # noqa: ANN201 - imported lazily, like the pipeline
        from nanofolks.memory.service import MemoryService

        return MemoryService(self.config, self.db, llm=self.llm)

    def close(self) -> None:
        if "memory" in self.__dict__:
            self.memory.close()
        self.db.close()
