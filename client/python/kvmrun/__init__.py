"""kvmrun: run x86 guest code in fresh KVM virtual machines through kvmrund.

A client of the kvmrun protocol (version 3), in pure Python::

    import kvmrun

    with kvmrun.Client() as client:          # $KVMRUN_SOCKET or /run/kvmrun/kvmrun.sock
        print(client.ping())
        result = client.run(open("hello-long.bin", "rb").read(), mode="long",
                            dump=[(0x400, 4)])
        print(result.exit.reason, result.console, hex(result.regs.rax), result.dump(0x400, 4))

:class:`Client` blocks, :class:`AsyncClient` is for asyncio; both pipeline
many runs with ``run_many``.  A refused request raises the
:class:`DaemonError` subclass of its code (:class:`BadRequest`,
:class:`TooLarge`, :class:`Busy`, :class:`Unsupported`, :class:`Forbidden`,
:class:`Internal`, :class:`Unavailable`); a broken connection raises
:class:`Disconnected`.
"""

from .aio import AsyncClient
from .client import DEFAULT_SOCKET, Client, socket_path
from .errors import (ERRORS, BadRequest, Busy, DaemonError, Disconnected, Forbidden, Internal,
                     KvmrunError, ProtocolError, TooLarge, Unavailable, Unsupported, error_for)
from .types import (REGISTERS, RETURNS, SEGMENTS, Dump, Exit, IoWrite, Kvm, Ping, Regs, Result,
                    RunRequest, RunStats, Segment, Sregs, Stats, Table, TraceEntry)

__version__ = "0.1.0"
PROTOCOL = 3
"""The protocol version this package speaks."""

__all__ = [
    "AsyncClient", "Client", "DEFAULT_SOCKET", "socket_path",
    "KvmrunError", "DaemonError", "BadRequest", "TooLarge", "Busy", "Unsupported",
    "Forbidden", "Internal", "Unavailable", "Disconnected", "ProtocolError", "ERRORS",
    "error_for",
    "RunRequest", "Result", "Exit", "Regs", "Sregs", "Segment", "IoWrite", "Dump",
    "RunStats", "Ping", "Kvm", "Stats", "REGISTERS", "SEGMENTS", "PROTOCOL",
    "Table", "TraceEntry", "RETURNS",
]
