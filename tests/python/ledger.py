"""The `bookkeeper` service of tests/schemas/polyglot.yaml, implemented in Python on the generated
base class and served by `natsgen.Host`.

Usage: python ledger.py NATS_URL, with the generated package `gen_polyglot` and the natsgen runtime
on PYTHONPATH. Prints "serving" once it takes calls; serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

import nats
import natsgen as rt
from gen_polyglot import polyglot as pg


class Ledger(pg.Bookkeeper):
    def __init__(self) -> None:
        self.entries: dict[str, pg.Entry] = {}
        self.log: list[str] = []

    async def add(self, ctx: rt.Context, entry: pg.Entry) -> pg.Entry:
        if entry.id == "closed":
            raise pg.Closed()
        if entry.id in self.entries:
            raise pg.Duplicate(id=entry.id)
        if entry.id == "boom":
            raise RuntimeError("a secret the caller must not see")
        self.entries[entry.id] = entry
        return entry

    async def total(self, ctx: rt.Context) -> int:
        return sum(entry.amount for entry in self.entries.values())

    async def seen(self, ctx: rt.Context) -> list[str]:
        return self.log

    async def audit(self, ctx: rt.Context, id: str, fail_times: int) -> None:
        self.log.append(f"audit:{id}:attempt {ctx.attempt}")
        if ctx.attempt <= fail_times:
            raise RuntimeError(f"audit {id} fails attempt {ctx.attempt}")

    async def on_added(self, ctx: rt.Context, event: pg.Entry) -> None:
        self.log.append(f"added:{event.id}:{ctx.subject}")

    async def on_cleared(self, ctx: rt.Context, event: pg.EntriesCleared) -> None:
        self.log.append(f"cleared:{event.reason}")


async def main(url: str) -> None:
    nc = await nats.connect(url)
    host = rt.Host(nc).serve(Ledger())
    await host.start()
    print("serving", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
