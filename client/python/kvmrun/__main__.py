"""A tiny command line: ``python3 -m kvmrun run IMAGE --mode long``,
``python3 -m kvmrun ping``, ``python3 -m kvmrun stats``.

The exit status is kvmrun-client's: 0 the guest halted, 1 it ended another
way, 2 a usage error, 3 the daemon refused the request, 4 no daemon, 5 the
daemon has no usable KVM, 6 the daemon was busy (retry later).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from . import Busy, Client, DaemonError, KvmrunError, Unavailable


def _number(text: str) -> int:
    return int(text, 0)


def _pair(text: str) -> tuple[int, int]:
    address, sep, length = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDRESS:LENGTH")
    return int(address, 0), int(length, 0)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python3 -m kvmrun",
                                     description="Talk to kvmrund.")
    parser.add_argument("--socket", help="the daemon's socket "
                        "(default $KVMRUN_SOCKET or /run/kvmrun/kvmrun.sock)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ping", help="print the daemon's ping answer")
    commands.add_parser("stats", help="print the daemon's counters")
    run = commands.add_parser("run", help="run a guest image and print its console")
    run.add_argument("image", help="the raw image file")
    run.add_argument("--mode", default="real", help="real, protected, paged or long")
    run.add_argument("--ring", type=int, choices=(0, 3))
    run.add_argument("--memory-size", type=_number)
    run.add_argument("--load-address", type=_number)
    run.add_argument("--timeout-ms", type=int)
    run.add_argument("--dump", type=_pair, action="append", metavar="ADDRESS:LENGTH",
                     help="print guest memory after the run (repeatable)")
    args = parser.parse_args(argv)

    image = b""
    if args.command == "run":
        try:
            with open(args.image, "rb") as f:
                image = f.read()
        except OSError as e:
            print(f"kvmrun: {e}", file=sys.stderr)
            return 2
    try:
        with Client(args.socket) as client:
            if args.command == "ping":
                print(json.dumps(asdict(client.ping())))
                return 0
            if args.command == "stats":
                print(json.dumps(asdict(client.stats())))
                return 0
            result = client.run(image, args.mode, ring=args.ring,
                                memory_size=args.memory_size,
                                load_address=args.load_address,
                                timeout_ms=args.timeout_ms, dump=args.dump)
    except Unavailable as e:
        print(f"kvmrun: daemon: {e}", file=sys.stderr)
        return 5
    except Busy as e:
        print(f"kvmrun: daemon: {e}", file=sys.stderr)
        return 6
    except DaemonError as e:
        print(f"kvmrun: daemon: {e}", file=sys.stderr)
        return 3
    except KvmrunError as e:  # Disconnected, ProtocolError
        print(f"kvmrun: {e}", file=sys.stderr)
        return 4
    sys.stdout.buffer.write(result.console_bytes)
    sys.stdout.flush()
    for d in result.dumps:
        print(f"memory at {d.address:#x}: {d.data.hex()}", file=sys.stderr)
    if not result.halted:
        print(f"kvmrun: the guest stopped with {result.exit.reason}: {result.exit}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
