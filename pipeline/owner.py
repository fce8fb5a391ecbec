"""Beam worker processes end with the pin2vec process that started them.

Beam's local multi-process runner starts SDK worker processes of its own. After a ``kill -9`` of
pin2vec they would run on for minutes (until their control channel to the dead runner times out),
and one finishing a bundle late could write a shard into the folder of the next run. So the
launching process records its pid in ``PIN2VEC_OWNER_PID`` (inherited by the workers it starts),
and every pipeline module imports this one: in a worker, a daemon thread checks once a second that
the owner is alive and ends the worker at once when it is not. Remote runners (Dataflow, Flink,
Spark) never see the variable: it is set only for local runs (:func:`claim`).
"""

from __future__ import annotations

import os

from recommender.core.lifetime import exit_when_gone

ENV = "PIN2VEC_OWNER_PID"
_started = False


def claim() -> None:
    """Make this process the owner of the Beam workers it is about to start (local runs)."""
    os.environ[ENV] = str(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: a reused pid, not ours; keep going
        return True
    return True


def watch_owner(period: float = 1.0) -> bool:
    """In a Beam worker started by a local pin2vec run, exit when that run dies. Returns whether
    a watcher was started (not in the owner itself, not outside a pin2vec run)."""
    global _started
    owner = os.environ.get(ENV, "")
    if _started or not owner.isdigit() or int(owner) == os.getpid():
        return False
    _started = True
    # When the owner is gone nothing this worker does can reach a live pipeline.
    exit_when_gone(lambda: _alive(int(owner)), period, "pin2vec-owner")
    return True


watch_owner()
