"""Shared helpers of the benchmark scripts: the machine, a child's time and peak memory,
and appending a section to BENCHMARKS.md."""

import datetime as dt
import os
import platform
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRATUS = os.path.join(ROOT, "target", "release", "stratus")
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")
CACHE = os.path.join(ROOT, ".cache", "bench")


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine():
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu()}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def run(cmd, env=None):
    """Run `cmd` and return (stdout, wall seconds, peak RSS MB, CPU seconds) of that child alone."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        # wait4 reports this child's own resource use (its peak RSS, its CPU time).
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err.read().decode()[-3000:]}")
        return out.read().decode(), wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime


def append(title, command, lines):
    """Append a section to BENCHMARKS.md and print it."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = ["", f"## {title}, {now}", "", f"- Machine: {machine()}", f"- Command: `{command}`", ""] + lines
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "a") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))
