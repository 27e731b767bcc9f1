"""Idle long-poll cost: opens N concurrent /sync long-polls against a running hearth and reports
the server's RSS and CPU time while they wait (measurement, not a test).

Usage: idle_polls.py BASE_URL SERVER_PID [N] [SECONDS]
Needs aiohttp (installed with matrix-nio in the client-test venv).
"""

import asyncio
import json
import sys
import time
import uuid

import aiohttp


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    return rss, ticks


async def main(base, pid, count, seconds):
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        name = f"idle{uuid.uuid4().hex[:6]}"
        async with http.post(f"{base}/_matrix/client/v3/register", json={"username": name, "password": "idle-pw", "auth": {"type": "m.login.dummy"}}) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/_matrix/client/v3/sync", headers=headers) as r:
            since = (await r.json())["next_batch"]
        url = f"{base}/_matrix/client/v3/sync?since={since}&timeout={int((seconds + 30) * 1000)}&set_presence=offline"

        async def poll():
            async with http.get(url, headers=headers) as r:
                await r.read()

        tasks = [asyncio.create_task(poll()) for _ in range(count)]
        await asyncio.sleep(3)  # let every request arrive and park
        rss_before, ticks_before = proc_stats(pid)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - start
        rss_after, ticks_after = proc_stats(pid)
        cpu_ms = (ticks_after - ticks_before) * 1000 / 100
        print(json.dumps({
            "idle_long_polls": count,
            "seconds": round(elapsed, 1),
            "server_rss_kib": rss_after,
            "server_cpu_ms_while_idle": cpu_ms,
            "cpu_percent": round(cpu_ms / (elapsed * 1000) * 100, 3),
        }))
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    base, pid = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10
    asyncio.run(main(base, pid, count, seconds))
