"""Claims: a running trial is held by its run, whose heartbeat its worker renews and whose owner (the
sweep's driver: pid, host, process start) is named in its tags. A claim lapses when its heartbeat stops
for ``DEAD_AFTER_S`` seconds, or at once when its owner is a process of this host that runs no more.
Plain functions of a run's tags (no MLflow here: :mod:`sparsebench.running.tracking` reads and writes them).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from sparsebench.running import records

HEARTBEAT_S = 30     # seconds between a running trial's heartbeats
DEAD_AFTER_S = 150   # a running trial whose last heartbeat is older is taken to have died


def is_alive(tags: dict, start_time_ms: int, now: float | None = None) -> bool:
    """Whether a ``running`` run's worker beat recently (runs without heartbeats: since their start)
    and its owner, the sweep's driver, is not known dead (:func:`owner_dead`)."""
    return (now or time.time()) < expires(tags, start_time_ms) and not owner_dead(tags)


def expires(tags: dict, start_time_ms: int) -> float:
    """When a ``running`` run's claim lapses unless its worker beats again (seconds since the epoch)."""
    return float(tags.get("sb.heartbeat") or start_time_ms / 1000) + DEAD_AFTER_S


def owner() -> dict[str, str]:
    """This process as the owner of claims (a sweep's parent runs and trial runs; tags ``sb.owner_*``):
    its pid and host, and its start (a later process given the same pid is not the owner)."""
    return {"owner_pid": str(os.getpid()), "owner_host": records.where()["host"], "owner_start": _started(os.getpid())}


def owner_dead(tags: dict) -> bool:
    """Whether a claim's owner is known to be dead: a process of this host that runs no more (or whose
    pid a later process holds). An owner on another host is known by its heartbeats alone."""
    pid, host = tags.get("sb.owner_pid"), tags.get("sb.owner_host")
    if not pid or host != records.where()["host"]:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):  # a process of another user holds it; or a bad tag
        return False
    started = _started(int(pid))
    return bool(tags.get("sb.owner_start")) and bool(started) and started != tags["sb.owner_start"]


def claim_holder(tags: dict, start_time_ms: int) -> str:
    """Who holds a live claim, and until when: "sweep pid P on host H; it expires at HH:MM:SS if that
    sweep is dead"."""
    who = (f"sweep pid {tags['sb.owner_pid']} on host {tags.get('sb.owner_host', '?')}" if tags.get("sb.owner_pid")
           else f"a sweep on host {tags.get('sb.host') or '?'}")
    return f"{who}; it expires at {time.strftime('%H:%M:%S', time.localtime(expires(tags, start_time_ms)))} " \
           "if that sweep is dead"


def _started(pid: int) -> str:
    """The start of process ``pid`` (clock ticks since boot, from /proc), or "" where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
