"""The ECALL worker threads of the server: jobs from the event loop, results back to it.

What asyncio's run_in_executor over a ThreadPoolExecutor did per ECALL, less its overheads on this path:
a concurrent.futures.Future chained to an asyncio one, the executor's idle semaphore (a Python Condition) on
every submit and every finished job, and one write to the event loop's self-pipe per finished job. Here a job
is a queue entry, and the results finished while the loop has not yet run the last wake-up share it: under
load one wake-up of the loop delivers several results.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

_Job = tuple[asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class EcallPool:
    """`workers` threads; submit() from the event loop's thread only."""

    def __init__(self, workers: int, *, name: str = "ecall") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._waking = False  # a delivery is scheduled on the loop and has not run yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wakeups = 0  # deliveries scheduled on the loop (for tests and the benchmark)
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """fn(*args) on a worker, in a copy of the caller's context; the future has its result or exception."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((future, contextvars.copy_context(), fn, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, ctx, fn, args = job
            if future.cancelled():  # its caller stopped waiting before it started: like a cancelled executor job
                continue
            try:
                result, error = ctx.run(fn, *args), None
            except BaseException as exc:
                result, error = None, exc
            with self._lock:
                self._done.append((future, result, error))
                if self._waking:
                    continue
                self._waking = True
                self.wakeups += 1
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits for these results any more
                pass

    def _deliver(self) -> None:
        with self._lock:
            done, self._done, self._waking = self._done, [], False
        for future, result, error in done:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def close(self) -> None:
        """Stop the workers once the queued jobs have run; blocks until they have."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
