"""A process's line in /proc/PID/stat (Linux, proc(5)): one parser for the places that ask how a
process stands."""

from pathlib import Path


def live_stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name (state, ppid, pgrp, …: proc(5)'s fields 3 onward), or
    None once the process has exited, a zombie included. The command name may hold spaces and
    parentheses, so the split is after its last ')'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields
