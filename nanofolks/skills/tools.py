"""The bots' side of skills: the prompt lists name and description only; `read_skill` gives the whole
SKILL.md when a bot needs it (progressive loading); `run_skill_script` runs one of a skill's scripts,
with `{{name}}` secrets in its arguments and environment resolved only then."""

from __future__ import annotations

import sys
from typing import Any

from nanofolks.agent.tools.exec import run_in_workspace
from nanofolks.agent.tools.registry import Tool, ToolContext, ToolError, params
from nanofolks.secrets.keeper import REF
from nanofolks.skills.skills import Skill, SkillError, Skills


def skills_block(skills: list[Skill]) -> str:
    """The prompt's list of the skills a bot may use: one line each, the rest stays on disk."""
    if not skills:
        return ""
    lines = [f"- {s.name}: {s.description}" for s in skills]
    return ("## Skills\nThese skills are available to you. Before using one, read its instructions with "
            "read_skill.\n" + "\n".join(lines))


def skill_tools(skills: Skills) -> list[Tool]:
    def usable(ctx: ToolContext, name: str) -> Skill:
        bot = ctx.crew.bots[ctx.bot]
        try:
            skill = skills.get(name)
        except SkillError as exc:
            raise ToolError(str(exc)) from None
        if skill not in skills.for_bot(bot.skills):
            status = skills.status(skill)
            why = f"it {status}" if status != "loaded" else "your role card does not list it"
            raise ToolError(f"@{ctx.bot} may not use the skill {name!r}: {why}")
        return skill

    async def read_skill(ctx: ToolContext, args: dict[str, Any]) -> str:
        skill = usable(ctx, args["name"])
        scripts = ", ".join(skill.scripts)
        return skill.instructions + (f"\n\n(scripts: {scripts}; run one with run_skill_script)" if scripts else "")

    async def run_skill_script(ctx: ToolContext, args: dict[str, Any]) -> str:
        skill = usable(ctx, args["skill"])
        script = args["script"]
        if script not in skill.scripts:
            raise ToolError(f"the skill {skill.name!r} has no script {script!r}; scripts: {', '.join(skill.scripts) or 'none'}")
        if any(REF.search(str(a)) for a in args.get("args") or []):
            raise ToolError("a secret goes in env (e.g. {\"GH_TOKEN\": \"{{github_token}}\"}), never in args: "
                            "a command line is visible to every local user")
        path = skill.path / "scripts" / script
        interpreter = [sys.executable] if path.suffix == ".py" else ["sh"]
        argv = [*interpreter, str(path), *[str(a) for a in args.get("args") or []]]
        # exec's runner: the same workspace, timeout, output cap and scrubbed environment; `env` (often a
        # secret) goes into the child's environment, never its argv, which any local user can read.
        return await run_in_workspace(ctx, argv, extra_env=dict(args.get("env") or {}))

    return [
        Tool("read_skill", "Read a skill's full instructions (its SKILL.md) before using it.",
             params({"name": {"type": "string", "description": "The skill's name, as listed under Skills."}},
                    ["name"]), read_skill),
        Tool("run_skill_script", "Run one of a skill's scripts in the workspace and get its exit code and output. "
             "Write a secret as {{name}} in env (never args); the script gets the value.",
             params({"skill": {"type": "string"}, "script": {"type": "string", "description": "File name in scripts/."},
                     "args": {"type": "array", "items": {"type": "string"}},
                     "env": {"type": "object", "additionalProperties": {"type": "string"},
                             "description": "Extra environment variables, e.g. {\"GH_TOKEN\": \"{{github_token}}\"}."}},
                    ["skill", "script"]),
             run_skill_script, enabled=lambda config: config.tools.exec_enabled,
             disabled_reason="running skill scripts is turned off for this crew (tools.execEnabled)", uses_secrets=("env",)),
    ]
