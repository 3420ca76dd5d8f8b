"""The server's ECALL worker pool: results and exceptions reach the awaiting coroutine in the caller's context,
a job whose caller stopped waiting before it started does not run, close() lets the queued jobs finish, and the
results that finish while the event loop is busy share one wake-up of the loop (run_in_executor wrote the loop's
self-pipe once per result)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from kms.service.ecall_pool import EcallPool

WHO = contextvars.ContextVar("who", default="nobody")


def test_results_exceptions_and_context_reach_the_caller() -> None:
    pool = EcallPool(2)

    async def main() -> None:
        WHO.set("caller")
        assert await pool.submit(lambda a, b: a + b, 2, 3) == 5
        result, who, thread = await pool.submit(lambda: (1, WHO.get(), threading.current_thread().name))
        assert (result, who) == (1, "caller") and thread.startswith("ecall_")
        with pytest.raises(ZeroDivisionError):
            await pool.submit(lambda: 1 / 0)

    asyncio.run(main())
    pool.close()
    assert not any(t.is_alive() for t in pool._threads)


def test_results_finished_while_the_loop_is_busy_share_one_wake_up() -> None:
    pool = EcallPool(4)

    async def main() -> list[int]:
        futures = [pool.submit(lambda i=i: i) for i in range(4)]
        time.sleep(0.3)  # the loop is busy: all four finish meanwhile
        return list(await asyncio.gather(*futures))

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert pool.wakeups == 1
    pool.close()


def test_a_job_cancelled_before_it_starts_does_not_run_and_close_waits_for_queued_jobs() -> None:
    pool = EcallPool(1)
    started, release, ran = threading.Event(), threading.Event(), []

    def blocker() -> None:
        started.set()
        assert release.wait(10)
        ran.append("blocker")

    async def main() -> None:
        first = pool.submit(blocker)
        assert await asyncio.to_thread(started.wait, 10)
        skipped = pool.submit(ran.append, "skipped")
        skipped.cancel()
        queued = pool.submit(ran.append, "queued")
        release.set()
        await first
        await queued

    asyncio.run(main())
    pool.close()
    assert ran == ["blocker", "queued"]
