"""The throughput benchmark's echo method as a Python service on nats-py's `micro` API.

Usage: python bench_service.py NATS_URL SUBJECT

Serves SUBJECT (queue group `q`, service `pybench`) the way the benchmark's other responders do:
decodes the params `{"seq": ..., "body": ...}` and answers `{"result": seq}`. Prints `ready` once
it serves and runs until it is killed. `benches/throughput.rs` starts it when NATSGEN_PYTHON names
a Python with nats-py (see docs/PERFORMANCE.md).
"""

import asyncio
import json
import sys

import nats
from nats.micro import add_service


async def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python bench_service.py NATS_URL SUBJECT")
    url, subject = sys.argv[1], sys.argv[2]
    nc = await nats.connect(url)

    async def ping(request):
        try:
            params = json.loads(request.data)
            seq = params["seq"]
        except (ValueError, KeyError, TypeError) as error:
            await request.respond_error("400", f"bad params: {error}")
            return
        await request.respond(json.dumps({"result": seq}, separators=(",", ":")).encode())

    service = await add_service(nc, name="pybench", version="1.0.0")
    await service.add_endpoint(name="ping", subject=subject, handler=ping)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
