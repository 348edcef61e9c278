"""Run a command once the rest of the machine is quiet (a shared box skews CPU timings).

    python benchmarks/when_quiet.py [--below 0.15] [--window 5] [--max-wait 1800] -- CMD ...

Waits until other processes keep fewer than `--below` cores busy over a `--window`-second
window (from /proc/stat), then runs CMD; gives up waiting after `--max-wait` seconds and
runs it anyway, saying so on stderr.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def busy_cores(window: float) -> float:
    def read():
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(f) - f[3] - f[4], time.perf_counter()
    b0, t0 = read()
    time.sleep(window)
    b1, t1 = read()
    return (b1 - b0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--below", type=float, default=0.15)
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--max-wait", type=float, default=1800)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    start = time.time()
    while True:
        load = busy_cores(args.window)
        if load < args.below:
            print(f"when_quiet: {load:.2f} cores busy, running", file=sys.stderr, flush=True)
            break
        if time.time() - start > args.max_wait:
            print(f"when_quiet: still {load:.2f} cores busy after {args.max_wait:.0f} s; running anyway",
                  file=sys.stderr, flush=True)
            break
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
