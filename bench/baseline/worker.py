#!/usr/bin/env python3
"""The baseline webhook worker: what a competent team writes in an afternoon.

Reads the transactional outbox `baseline.outbox` (bench/baseline/schema.sql) and POSTs one
webhook per row, the seed's JSON body rendered from the row's payload:

    {"eshop":"<account.eshopId>","email":"<customer.email>","credit":"<customer.credit>",
     "custom":{"field":"vlastni_pole"}}

with the header `webhook-id: out_<outbox id>`.

Design (asyncio, psycopg 3, aiohttp):
- LISTEN outbox on its own connection; a notification only wakes the claimer.
- The claimer claims up to --batch due rows in one statement (FOR UPDATE SKIP LOCKED, the rows
  go to state 'sending' with a lease), whenever fewer than one batch is queued; when a claim
  comes back short it sleeps until a notification or the --poll interval (the backstop).
- --concurrency sender tasks share one aiohttp session (keep-alive, that many connections),
  so that many requests are in flight.
- A marker task writes outcomes in batches: done rows in one UPDATE, failures back to
  'pending' with exponential backoff (or 'failed' after 10 attempts).
- Leases that ran out (a crashed worker) are taken back by the poll.
- SIGTERM/SIGINT: stop claiming, finish what is queued (up to 10 s), record, release the rest.
"""
import argparse
import asyncio
import json
import logging
import signal
import sys
import time

import aiohttp
import psycopg

CLAIM_SQL = """
UPDATE baseline.outbox o
   SET state = 'sending', attempts = o.attempts + 1, locked_until = now() + interval '60 seconds'
  FROM (SELECT id FROM baseline.outbox
         WHERE state = 'pending' AND next_attempt_at <= now()
         ORDER BY id
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED) due
 WHERE o.id = due.id
RETURNING o.id, o.payload #>> '{account,eshopId}', o.payload #>> '{customer,email}', o.payload #>> '{customer,credit}'
"""

DONE_SQL = """
UPDATE baseline.outbox
   SET state = 'done', processed_at = now(), locked_until = NULL, last_error = NULL
 WHERE id = ANY(%s) AND state = 'sending'
"""

RETRY_SQL = """
UPDATE baseline.outbox o
   SET state = CASE WHEN o.attempts >= 10 THEN 'failed' ELSE 'pending' END,
       next_attempt_at = now() + least(3600, 5 * power(2, o.attempts - 1)) * interval '1 second',
       locked_until = NULL, last_error = f.error
  FROM unnest(%s::bigint[], %s::text[]) AS f(id, error)
 WHERE o.id = f.id AND o.state = 'sending'
"""

RELEASE_SQL = """
UPDATE baseline.outbox
   SET state = 'pending', attempts = attempts - 1, locked_until = NULL, next_attempt_at = now()
 WHERE id = ANY(%s) AND state = 'sending'
"""

REAP_SQL = """
UPDATE baseline.outbox
   SET state = 'pending', locked_until = NULL, next_attempt_at = now()
 WHERE state = 'sending' AND locked_until < now()
"""

log = logging.getLogger("baseline")


class Worker:
    def __init__(self, dsn: str, url: str, batch: int, concurrency: int, poll: float):
        self.dsn = dsn
        self.url = url
        self.batch = batch
        self.concurrency = concurrency
        self.poll = poll
        self.queue: asyncio.Queue = asyncio.Queue()
        self.wake = asyncio.Event()        # a notification arrived
        self.room = asyncio.Event()        # the queue fell below one batch
        self.flush_now = asyncio.Event()   # a batch of outcomes is ready
        self.stopping = asyncio.Event()
        self.done: list[int] = []
        self.failed: list[tuple[int, str]] = []
        self.sent = 0

    async def run(self) -> None:
        claim_conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, application_name="baseline claimer")
        mark_conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, application_name="baseline marker")
        listen_conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, application_name="baseline listener")
        await listen_conn.execute("LISTEN outbox")
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=15, connect=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            listener = asyncio.create_task(self.listen(listen_conn))
            claimer = asyncio.create_task(self.claim(claim_conn))
            marker = asyncio.create_task(self.mark(mark_conn))
            senders = [asyncio.create_task(self.send(session)) for _ in range(self.concurrency)]
            log.info("baseline worker started: batch=%d concurrency=%d poll=%.1fs", self.batch, self.concurrency, self.poll)
            await self.stopping.wait()
            # Stop claiming, finish what is queued, then record and release the rest.
            claimer.cancel()
            listener.cancel()
            try:
                await asyncio.wait_for(self.queue.join(), timeout=10)
            except asyncio.TimeoutError:
                log.warning("shutdown grace over with %d queued", self.queue.qsize())
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, claimer, listener, return_exceptions=True)
            marker.cancel()
            await asyncio.gather(marker, return_exceptions=True)
            await self.flush(mark_conn)
            unsent = []
            while not self.queue.empty():
                unsent.append(self.queue.get_nowait()[0])
            if unsent:
                await mark_conn.execute(RELEASE_SQL, (unsent,))
        for conn in (claim_conn, mark_conn, listen_conn):
            await conn.close()
        log.info("baseline worker stopped: %d requests sent", self.sent)

    async def listen(self, conn: psycopg.AsyncConnection) -> None:
        async for _ in conn.notifies():
            self.wake.set()

    async def claim(self, conn: psycopg.AsyncConnection) -> None:
        next_reap = 0.0
        while True:
            while self.queue.qsize() >= self.batch:
                self.room.clear()
                await self.room.wait()
            if time.monotonic() >= next_reap:
                await conn.execute(REAP_SQL)
                next_reap = time.monotonic() + 15
            self.wake.clear()  # before the claim: a notification during it is not lost
            cur = await conn.execute(CLAIM_SQL, {"limit": self.batch})
            rows = await cur.fetchall()
            for row in rows:
                self.queue.put_nowait(row)
            if len(rows) == self.batch:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll)
            except asyncio.TimeoutError:
                pass

    async def send(self, session: aiohttp.ClientSession) -> None:
        url = self.url
        while True:
            outbox_id, eshop, email, credit = await self.queue.get()
            try:
                if self.queue.qsize() < self.batch:
                    self.room.set()
                body = json.dumps(
                    {"eshop": eshop or "", "email": email or "", "credit": credit or "", "custom": {"field": "vlastni_pole"}},
                    separators=(",", ":"), ensure_ascii=False).encode()
                headers = {
                    "Content-Type": "application/json",
                    "webhook-id": f"out_{outbox_id}",
                    "webhook-timestamp": str(int(time.time())),
                }
                error = None
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if not 200 <= response.status < 300:
                            error = f"HTTP {response.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self.sent += 1
                if error is None:
                    self.done.append(outbox_id)
                    if len(self.done) >= self.batch:
                        self.flush_now.set()
                else:
                    log.warning("delivery out_%d failed: %s", outbox_id, error)
                    self.failed.append((outbox_id, error))
                    self.flush_now.set()
            finally:
                self.queue.task_done()

    async def mark(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            try:
                await asyncio.wait_for(self.flush_now.wait(), timeout=0.05)
            except asyncio.TimeoutError:
                pass
            self.flush_now.clear()
            await self.flush(conn)

    async def flush(self, conn: psycopg.AsyncConnection) -> None:
        if self.done:
            ids, self.done = self.done, []
            await conn.execute(DONE_SQL, (ids,))
        if self.failed:
            failed, self.failed = self.failed, []
            await conn.execute(RETRY_SQL, ([f[0] for f in failed], [f[1] for f in failed]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="libpq connection string")
    parser.add_argument("--url", required=True, help="where to POST the webhooks")
    parser.add_argument("--batch", type=int, default=100, help="rows claimed per query [100]")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight [64]")
    parser.add_argument("--poll", type=float, default=1.0, help="backstop poll interval, seconds [1]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    worker = Worker(args.dsn, args.url, args.batch, args.concurrency, args.poll)

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        await worker.run()

    asyncio.run(runner())
    return 0


if __name__ == "__main__":
    sys.exit(main())
