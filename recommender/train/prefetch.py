"""Run an iterator in a background thread, a bounded queue ahead of its consumer.

The trainer prepares minibatches (integer work) here while the calling thread does the float math;
numpy releases the GIL in both. Items come out in the producer's order, so results do not depend
on whether the thread is used.
"""

from __future__ import annotations

import queue
import threading

from recommender.train.corpus import PREFETCH_DEPTH


def prefetch(items, threaded: bool, depth: int = PREFETCH_DEPTH):
    """Iterate ``items``, producing them in a background thread when ``threaded``.

    An exception in the producer is re-raised in the consumer; closing the consumer early stops
    the producer.
    """
    if not threaded:
        yield from items
        return
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    thread = threading.Thread(target=produce, name="pin2vec-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
