#!/usr/bin/env python3
"""Run a guest image on kvmrund and print its console, using nothing but
Python's standard library.  Usage: protocol-example.py SOCKET IMAGE

Exits 0 only when the daemon answered ok and the guest halted."""

import base64
import json
import socket
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: protocol-example.py SOCKET IMAGE")
    socket_path, image_path = sys.argv[1], sys.argv[2]
    with open(image_path, "rb") as f:
        image = f.read()

    request = {
        "id": 1,
        "op": "run",
        "mode": "real",
        "image": base64.b64encode(image).decode("ascii"),
        "dump": [{"address": 1024, "length": 1}],
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        # One JSON object per line: json.dumps never writes a newline.
        sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
        line = sock.makefile("rb").readline()
    if not line.endswith(b"\n"):
        sys.exit("kvmrund closed the connection without a whole answer")

    response = json.loads(line)
    if not response["ok"]:
        error = response["error"]
        sys.exit(f"kvmrund: {error['code']}: {error['message']}")

    # "console" has U+FFFD for bytes that are not UTF-8; the exact bytes
    # are then in "console_base64".
    if "console_base64" in response:
        console = base64.b64decode(response["console_base64"])
    else:
        console = response["console"].encode("utf-8")
    sys.stdout.buffer.write(console)
    sys.stdout.flush()

    for dump in response["dump"]:
        data = base64.b64decode(dump["data"])
        print(f"memory at {dump['address']:#x}: {data.hex()}", file=sys.stderr)

    reason = response["exit"]["reason"]
    if reason != "hlt":
        sys.exit(f"the guest stopped with {reason}, not hlt")


if __name__ == "__main__":
    main()
