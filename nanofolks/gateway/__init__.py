"""`nanofolks gateway`: every enabled chat channel in one process.

    core.py      the lifecycle: channels started and stopped, turn workers, send workers, added tasks
    turns.py     answering one inbox row (a command, help, or a turn) and queueing the reply
    commands.py  the chat commands (/rooms, /room, /help), one list
    locks.py     one gateway per channel credential (OS file locks)
    report.py    what every channel is doing, for `nanofolks status` and `nanofolks channels list`
    logs.py      where the gateway logs, through the secret sanitizer (secrets/sanitize.py)

Which channels exist and what each can do is channels/registry.py."""
