"""Planning from a STAC API against planning from NDJSON: the same 100 000 synthetic
Sentinel-2 items (`stratus synth --items-only`), as an NDJSON file and loaded into a real
STAC API (stac-fastapi-pgstac on PostgreSQL, scripts/stac-api.sh), each planned onto
africa-10 with `stratus save-tasks` (RUNS times, alternating), items per second and peak
memory side by side. The two plans must have the same tasks.

    python3 scripts/bench/stac_api_planning.py [--runs 3] [--page-size 1000]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import time

from common import CACHE, ROOT, STRATUS, append, run

N = 100_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def plan(args, location, env):
    shutil.rmtree(location, ignore_errors=True)
    out, wall, rss, cpu_s = run([STRATUS, "save-tasks", *args, "--grid", "africa-10", "--frequency", "annual",
                                 "--plugin", "gm-s2", "--location", location], env=env)
    tasks = int(re.search(r"-> (\d+) tasks", out).group(1))
    shutil.rmtree(location, ignore_errors=True)
    return tasks, wall, rss, cpu_s


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--page-size", type=int, default=1000)
    a = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    items = os.path.join(CACHE, f"africa-items-{N}.ndjson")
    if not os.path.exists(items):
        run([STRATUS, "synth", "--items-only", "--out", items, "--year", "2019", "--years", "1", "--max-items", str(N)])
    with open(items) as f:
        first = f.readline()
    collection = re.search(r'"collection":\s*"([^"]+)"', first).group(1)
    hrefs = re.findall(r'"href":\s*"(\w+://[^/"]+)', first)

    server = os.path.join(CACHE, "stac-api-server")
    shutil.rmtree(server, ignore_errors=True)
    os.makedirs(server)
    script = os.path.join(ROOT, "scripts", "stac-api.sh")
    url = subprocess.run([script, "start", server, str(free_port())], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        started = time.monotonic()
        subprocess.run([script, "load", server, items], check=True)
        load_s = time.monotonic() - started
        # The API host is on loopback: allowed by name, with the items' asset hosts and the
        # NDJSON file's folder (an allow-list applies to every input).
        env = {"STRATUS_ALLOWED_INPUTS": ",".join([url, CACHE, *sorted(set(hrefs))])}
        rows = {"NDJSON file": [], "STAC API": []}
        tasks = {}
        for _ in range(a.runs):
            for what, args in (("NDJSON file", ["--input", items]),
                               ("STAC API", ["--stac-api", url, "--collections", collection,
                                             "--page-size", str(a.page_size)])):
                t, wall, rss, cpu_s = plan(args, os.path.join(CACHE, "plan-api-bench"), env)
                tasks.setdefault(what, t)
                assert tasks[what] == t
                rows[what].append((wall, rss, cpu_s))
                print(what, t, f"{wall:.1f} s", f"{rss:.0f} MB")
        assert tasks["NDJSON file"] == tasks["STAC API"], tasks
    finally:
        subprocess.run([script, "stop", server])

    def span(values, fmt):
        lo, hi = min(values), max(values)
        return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"

    lines = [
        f"{N:,} synthetic Sentinel-2 items (as `make bench`'s planner bench), planned onto africa-10"
        f" (`save-tasks --frequency annual --plugin gm-s2`, {tasks['STAC API']:,} tasks both ways) from the"
        f" NDJSON file and from stac-fastapi-pgstac 7.2 on PostgreSQL on 127.0.0.1 (pages of {a.page_size},"
        f" through the egress guard); {a.runs} runs each, alternating, ranges over runs. Loading the"
        f" items into pgstac took {load_s:.0f} s (not counted).",
        "",
        "| input | wall s | items/s | peak RSS MB | CPU s |",
        "|---|---|---|---|---|",
    ]
    for what, r in rows.items():
        walls = [x[0] for x in r]
        lines.append(f"| {what} | {span(walls, '{:.1f}')} | {span([N / w for w in walls], '{:,.0f}')}"
                     f" | {span([x[1] for x in r], '{:.0f}')} | {span([x[2] for x in r], '{:.1f}')} |")
    append("Planning from a STAC API", "python3 scripts/bench/stac_api_planning.py (make bench)", lines)


if __name__ == "__main__":
    main()
