"""The bots' tools: a registry with per-role permissions, and the built-in tools."""

from __future__ import annotations

from nanofolks.agent.tools.delegate import DELEGATE_TOOL
from nanofolks.agent.tools.exec import EXEC_TOOL
from nanofolks.agent.tools.files import FILE_TOOLS
from nanofolks.agent.tools.registry import Outcome, Tool, ToolContext, ToolError, ToolRegistry
from nanofolks.agent.tools.routines import ROUTINE_TOOL
from nanofolks.agent.tools.tasks import ROOM_TASK_TOOL
from nanofolks.agent.tools.web import WEB_FETCH_TOOL
from nanofolks.agent.tools.worklog import WORK_LOG_TOOL

__all__ = ["Outcome", "Tool", "ToolContext", "ToolError", "ToolRegistry", "builtin_registry"]


def builtin_registry() -> ToolRegistry:
    """A registry holding every built-in tool; others (memory's search_memory...) are added with register()."""
    return ToolRegistry([*FILE_TOOLS, EXEC_TOOL, WEB_FETCH_TOOL, ROOM_TASK_TOOL, DELEGATE_TOOL, ROUTINE_TOOL,
                         WORK_LOG_TOOL])
