#!/usr/bin/env python3
"""Throughput of kvmrun.Client.run_many against kvmrun-bench's daemon row.

Usage: PYTHONPATH=client/python python3 client/python/tests/bench_run_many.py \\
           --kvmrund build/kvmrund --bench build/kvmrun-bench \\
           --guest build/tests/guests/hello-real.bin [--runs 10000] [--window 32]

Starts one kvmrund with default settings (or uses --socket), then in each of
--rounds rounds measures kvmrun-bench's "daemon, 4 conn x depth 4" runs/s
(--json, rows.daemon.runs_per_s) and the runs/s of --runs runs pipelined
through one Client.run_many; prints both and their ratio, and exits 0 when
the median ratio is at least --goal (0.9), 1 when not, 77 without KVM.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import kvmrun


def python_rate(client: kvmrun.Client, image: bytes, runs: int, window: int) -> float:
    request = kvmrun.RunRequest(image)
    start = time.perf_counter()
    halted = sum(r.halted for r in client.run_many((request for _ in range(runs)), window))
    seconds = time.perf_counter() - start
    if halted != runs:
        sys.exit(f"bench_run_many: {runs - halted} of {runs} runs did not halt")
    return runs / seconds


def bench_rate(bench: str, socket: str, guest: str, pid: int | None) -> float:
    cmd = [bench, "--socket", socket, "--guest", guest, "--json", "--rounds", "1",
           "--spin", "0", "--spin-ring0", "0"]
    if pid is not None:
        cmd += ["--daemon-pid", str(pid)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["rows"]["daemon"]["runs_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", help="a running kvmrund (default: start --kvmrund)")
    parser.add_argument("--kvmrund", default="build/kvmrund")
    parser.add_argument("--bench", default="build/kvmrun-bench")
    parser.add_argument("--guest", default="build/tests/guests/hello-real.bin")
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--goal", type=float, default=0.9)
    args = parser.parse_args()

    with open(args.guest, "rb") as f:
        image = f.read()
    daemon = None
    socket = args.socket
    tmp = tempfile.TemporaryDirectory()
    if socket is None:
        socket = os.path.join(tmp.name, "kvmrun.sock")
        daemon = subprocess.Popen([args.kvmrund, "--socket", socket], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(socket):
            if time.monotonic() > deadline:
                sys.exit("bench_run_many: kvmrund did not come up")
            time.sleep(0.02)
    try:
        with kvmrun.Client(socket) as client:
            ping = client.ping()
            if not ping.kvm.available:
                print(f"bench_run_many: needs KVM: {ping.kvm.reason}")
                return 77
            ratios = []
            for n in range(1, args.rounds + 1):
                b = bench_rate(args.bench, socket, args.guest,
                               daemon.pid if daemon else None)
                p = python_rate(client, image, args.runs, args.window)
                ratios.append(p / b)
                print(f"round {n}: kvmrun-bench daemon {b:.0f} runs/s, "
                      f"Python run_many (window {args.window}) {p:.0f} runs/s, "
                      f"ratio {p / b:.2f}", flush=True)
        ratio = statistics.median(ratios)
        print(f"median ratio {ratio:.2f} (goal >= {args.goal}): "
              f"{'ok' if ratio >= args.goal else 'MISSED'}")
        return 0 if ratio >= args.goal else 1
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
