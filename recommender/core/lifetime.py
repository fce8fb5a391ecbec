"""Worker processes that end with the process they work for."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


def exit_when_gone(alive: Callable[[], bool], period: float, name: str) -> None:
    """End this process (``os._exit(1)``) as soon as ``alive()`` is false, checked every
    ``period`` seconds in a daemon thread called ``name``.

    A thread, so the check runs wherever the main thread is: blocked in a read that will never
    return, or inside a long computation. For workers whose work is worthless without their
    owner: Beam's SDK workers (``pipeline/owner.py``) and the trainer's processes
    (``recommender/train/parallel.py``).
    """
    def watch() -> None:
        while alive():
            time.sleep(period)
        os._exit(1)

    threading.Thread(target=watch, name=name, daemon=True).start()
