"""Requests and results of the kvmrun protocol (version 3) as dataclasses,
and their JSON lines.

Every field of a request can be given; results have typed fields, with
``bytes`` where the protocol sends base64.  Fields of an answer this package
does not know are ignored (each result keeps the whole answer in ``raw``),
and an exit reason or error code it does not know is kept as its string.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import DaemonError, ProtocolError, error_for

REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9",
             "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
"""The general registers of ``regs``, in the protocol's order."""

SEGMENTS = ("cs", "ds", "es", "ss", "fs", "gs", "tr", "ldt")
"""The segment registers of ``sregs``."""

RETURNS = ("xstate", "msrs", "descriptors", "cpuid")
"""What a request's ``returns`` may ask for (the protocol's ``return``)."""

_WIDE = ("xmm", "ymm", "zmm", "st")
"""The xstate registers the protocol writes as ``"0x..."`` strings."""


def _is_wide(name: str) -> bool:
    return name.startswith(_WIDE) and name[-1:].isdigit()


# --- requests -----------------------------------------------------------------

@dataclass(frozen=True)
class RunRequest:
    """One ``run``: the guest ``image`` and how to run it.

    Fields left ``None`` are not sent, so the daemon's defaults apply (see
    PROTOCOL.md).  ``regions`` are ``(address, data)`` pairs, ``dump`` are
    ``(address, length)`` pairs; addresses and register values are integers
    up to 2**64 - 1.  ``segments`` is for real mode only; a segment may be a
    selector or a descriptor cache ``{"selector", "base", "limit",
    "attributes"}``.

    The CPU state (PROTOCOL.md, "CPU state"): ``xstate`` maps register names
    (``xmm0``, ``ymm1``, ``zmm31``, ``k0``, ``st0`` in stack order, ``mxcsr``,
    ``fcw``, ...) to integers, sent as the protocol's ``"0x..."`` strings where
    it wants them; ``msrs`` maps MSR names (``lstar``, ``fs_base``, ...) to
    integers; ``cpuid`` entries are mappings of ``function``, ``index``
    (optional, 0), ``eax``, ``ebx``, ``ecx``, ``edx``; ``returns`` names the
    parts of :data:`RETURNS` the result should carry.

    Stepping (PROTOCOL.md, "Stepping, trace and changes"): ``max_instructions``
    stops the guest after that many instructions (exit ``step_limit``);
    ``trace`` (with it) returns where each instruction began, ``changes`` the
    memory whose bytes the run changed.
    """

    image: bytes
    mode: str = "real"
    ring: int | None = None
    memory_size: int | None = None
    load_address: int | None = None
    regs: Mapping[str, int] | None = None
    segments: Mapping[str, int | Mapping[str, int]] | None = None
    timeout_ms: int | None = None
    regions: Iterable[tuple[int, bytes]] | None = None
    log_ports: Iterable[int] | None = None
    dump: Iterable[tuple[int, int]] | None = None
    xstate: Mapping[str, int] | None = None
    msrs: Mapping[str, int] | None = None
    cpuid: Iterable[Mapping[str, int]] | None = None
    returns: Iterable[str] | None = None
    max_instructions: int | None = None
    trace: bool | None = None
    changes: bool | None = None

    def to_json(self, id: Any = None) -> dict[str, Any]:
        """The request as the JSON object the protocol sends."""
        obj: dict[str, Any] = {"id": id, "op": "run", "mode": self.mode,
                               "image": _b64(self.image)}
        if self.ring is not None:
            obj["ring"] = self.ring
        if self.memory_size is not None:
            obj["memory_size"] = self.memory_size
        if self.load_address is not None:
            obj["load_address"] = self.load_address
        if self.regs is not None:
            obj["regs"] = dict(self.regs)
        if self.segments is not None:
            obj["segments"] = {k: v if isinstance(v, int) else dict(v)
                               for k, v in self.segments.items()}
        if self.timeout_ms is not None:
            obj["timeout_ms"] = self.timeout_ms
        if self.regions is not None:
            obj["regions"] = [{"address": a, "data": _b64(d)} for a, d in self.regions]
        if self.log_ports is not None:
            obj["log_ports"] = list(self.log_ports)
        if self.dump is not None:
            obj["dump"] = [{"address": a, "length": n} for a, n in self.dump]
        if self.xstate is not None:
            obj["xstate"] = {k: f"{v:#x}" if _is_wide(k) else v
                             for k, v in self.xstate.items()}
        if self.msrs is not None:
            obj["msrs"] = dict(self.msrs)
        if self.cpuid is not None:
            obj["cpuid"] = [dict(e) for e in self.cpuid]
        if self.returns is not None:
            obj["return"] = list(self.returns)
        if self.max_instructions is not None:
            obj["max_instructions"] = self.max_instructions
        if self.trace is not None:
            obj["trace"] = self.trace
        if self.changes is not None:
            obj["changes"] = self.changes
        return obj


def _b64(data: bytes) -> str:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    return base64.b64encode(data).decode("ascii")


def encode(obj: Mapping[str, Any]) -> bytes:
    """A request object as one protocol line, newline included."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


# --- results ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Exit:
    """How a run ended: ``reason`` (``"hlt"``, ``"io"``, ``"exception"``, ...,
    or a reason newer than this package) and the details its reason has;
    the others are ``None``."""

    reason: str
    port: int | None = None
    """``io``: the port."""
    direction: str | None = None
    """``io``: ``"in"`` or ``"out"``."""
    size: int | None = None
    """``io``: bytes per item."""
    count: int | None = None
    """``io``: items (more than 1 for ``rep ins/outs``)."""
    data: bytes | None = None
    """``io`` and ``mmio``: the bytes written (empty for a read)."""
    address: int | None = None
    """``mmio``: the guest-physical address."""
    is_write: bool | None = None
    """``mmio``: whether it was a write."""
    length: int | None = None
    """``mmio``: bytes accessed."""
    hardware_entry_failure_reason: int | None = None
    """``fail_entry``: the hardware's reason."""
    suberror: int | None = None
    """``internal_error``: ``KVM_INTERNAL_ERROR_*``."""
    kvm_data: tuple[int, ...] | None = None
    """``internal_error``: the integers KVM gave (the protocol's ``data``)."""
    instruction: str | None = None
    """``internal_error``: the instruction bytes in hex, when KVM gave them."""
    vector: int | None = None
    """``exception``: the vector, 0..31."""
    name: str | None = None
    """``exception``: ``"#PF"`` and so on, for vectors that have a name."""
    error_code: int | None = None
    """``exception``: the error code, when the CPU pushes one."""
    rip: int | None = None
    """``exception``: the faulting instruction's ``rip``."""
    cs: int | None = None
    """``exception``: the faulting instruction's ``cs``."""
    cr2: int | None = None
    """``exception``: the faulting address of a ``#PF``."""
    limit: str | None = None
    """``output_limit``: ``"console"`` or ``"io_log"``."""
    kvm_exit_reason: int | None = None
    """``other``: the ``KVM_EXIT_*`` number."""

    @classmethod
    def from_json(cls, obj: Any) -> Exit:
        """The exit from the answer's ``exit`` object."""
        obj = _object(obj, "exit")
        kw: dict[str, Any] = {"reason": _str(obj, "reason", "exit")}
        for key in obj.keys() & _EXIT_FIELDS:
            kind = _EXIT_FIELDS[key]
            if kind is int:
                kw[key] = _int(obj, key, "exit")
            elif kind is str:
                kw[key] = _str(obj, key, "exit")
            else:
                kw[key] = _bool(obj, key, "exit")
        data = obj.get("data")
        if isinstance(data, str):
            kw["data"] = _unb64(data, "exit.data")
        elif isinstance(data, list):
            kw["kvm_data"] = tuple(_int({"data": v}, "data", "exit") for v in data)
        elif data is not None:
            raise ProtocolError(f"exit.data: expected base64 or an array, got {data!r}")
        return cls(**kw)


_EXIT_FIELDS: dict[str, type] = {
    **dict.fromkeys(("port", "size", "count", "address", "length",
                     "hardware_entry_failure_reason", "suberror", "vector", "error_code",
                     "rip", "cs", "cr2", "kvm_exit_reason"), int),
    **dict.fromkeys(("direction", "instruction", "name", "limit"), str),
    "is_write": bool,
}


@dataclass(frozen=True, slots=True)
class Regs:
    """The 18 general registers, unsigned 64-bit."""

    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rsp: int
    rbp: int
    r8: int
    r9: int
    r10: int
    r11: int
    r12: int
    r13: int
    r14: int
    r15: int
    rip: int
    rflags: int

    @classmethod
    def from_json(cls, obj: Any) -> Regs:
        """The registers from the answer's ``regs`` object."""
        obj = _object(obj, "regs")
        values = [obj.get(name) for name in REGISTERS]
        if not all(type(v) is int for v in values):
            values = [_int(obj, name, "regs") for name in REGISTERS]  # says which
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment register: its selector and base, and with ``returns``
    ``"descriptors"`` its cache's byte limit and access-rights word."""

    selector: int
    base: int
    limit: int | None = None
    attributes: int | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """The GDT or IDT register: base and limit."""

    base: int
    limit: int


@dataclass(frozen=True, slots=True)
class Sregs:
    """The control registers, EFER and the segment registers."""

    cr0: int
    cr2: int
    cr3: int
    cr4: int
    efer: int
    cs: Segment
    ds: Segment
    es: Segment
    ss: Segment
    fs: Segment
    gs: Segment
    tr: Segment
    ldt: Segment
    gdt: Table | None = None
    """With ``returns`` ``"descriptors"``, as ``idt``."""
    idt: Table | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Sregs:
        """The registers from the answer's ``sregs`` object."""
        obj = _object(obj, "sregs")
        if "gdt" in obj:
            return cls._with_descriptors(obj)
        try:
            control = [obj["cr0"], obj["cr2"], obj["cr3"], obj["cr4"], obj["efer"]]
            segments = [Segment(obj[name]["selector"], obj[name]["base"]) for name in SEGMENTS]
            if all(type(v) is int for v in control) and all(
                    type(s.selector) is int and type(s.base) is int for s in segments):
                return cls(*control, *segments)
        except (KeyError, TypeError):
            pass
        # Something is missing or wrong: say what.
        kw: dict[str, Any] = {name: _int(obj, name, "sregs")
                              for name in ("cr0", "cr2", "cr3", "cr4", "efer")}
        for name in SEGMENTS:
            seg = _object(obj.get(name), f"sregs.{name}")
            kw[name] = Segment(_int(seg, "selector", f"sregs.{name}"),
                               _int(seg, "base", f"sregs.{name}"))
        return cls(**kw)

    @classmethod
    def _with_descriptors(cls, obj: dict[str, Any]) -> Sregs:
        kw: dict[str, Any] = {name: _int(obj, name, "sregs")
                              for name in ("cr0", "cr2", "cr3", "cr4", "efer")}
        for name in SEGMENTS:
            ctx = f"sregs.{name}"
            seg = _object(obj.get(name), ctx)
            kw[name] = Segment(*(_int(seg, k, ctx)
                                 for k in ("selector", "base", "limit", "attributes")))
        for name in ("gdt", "idt"):
            table = _object(obj.get(name), f"sregs.{name}")
            kw[name] = Table(_int(table, "base", f"sregs.{name}"),
                             _int(table, "limit", f"sregs.{name}"))
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class IoWrite:
    """A write to a port of ``log_ports``: ``size`` is 1, 2 or 4 bytes."""

    port: int
    size: int
    value: int


@dataclass(frozen=True, slots=True)
class Dump:
    """Guest memory asked for with ``dump``: ``data`` from ``address`` on."""

    address: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RunStats:
    """What a run cost: KVM exits, and nanoseconds the vCPU ran."""

    exits: int
    run_ns: int


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """Where one instruction of a traced run began."""

    rip: int
    cs: int


@dataclass(frozen=True)
class Result:
    """The answer to a ``run`` the daemon carried out.

    A guest that faulted or timed out still gives a result: ``exit.reason``
    says how it ended.  ``console`` is the guest's console output as text
    (bytes that are not UTF-8 shown as U+FFFD), ``console_bytes`` the exact
    bytes.
    """

    id: Any
    exit: Exit
    regs: Regs
    sregs: Sregs
    console: str
    console_bytes: bytes
    io_log: tuple[IoWrite, ...]
    dumps: tuple[Dump, ...]
    stats: RunStats
    console_truncated: bool = False
    io_log_truncated: bool = False
    paging: str | None = None
    """Paged runs only: ``"legacy"`` (32-bit paging) or ``"compat"``
    (compatibility mode under long-mode paging; PROTOCOL.md says what
    differs); ``None`` for the other modes."""
    xstate: Mapping[str, int] | None = None
    """With ``returns`` ``"xstate"``: each register as an integer (the vector
    and x87 registers too), and ``xcr0``."""
    msrs: Mapping[str, int] | None = None
    """With ``returns`` ``"msrs"``: the allow-listed MSRs after the run."""
    cpuid: tuple[Mapping[str, int], ...] | None = None
    """With ``returns`` ``"cpuid"``: the vCPU's CPUID table."""
    trace: tuple[TraceEntry, ...] | None = None
    """With ``trace``: where each instruction began, in order."""
    trace_truncated: bool = False
    changes: tuple[Dump, ...] | None = None
    """With ``changes``: the runs of guest memory the run changed, by address."""
    changes_truncated: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The whole answer, for fields newer than this package."""

    @property
    def halted(self) -> bool:
        """Whether the guest ended with ``HLT``."""
        return self.exit.reason == "hlt"

    def dump(self, address: int, length: int) -> bytes:
        """The ``length`` bytes of guest memory at ``address``, from a range
        the request's ``dump`` asked for; ``KeyError`` when none holds them all."""
        for d in self.dumps:
            if d.address <= address and address + length <= d.address + len(d.data):
                start = address - d.address
                return d.data[start:start + length]
        raise KeyError(f"no dump holds {length} bytes at {address:#x}")

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Result:
        """The result from a run's answer (``"ok": true``)."""
        console = _str(obj, "console", "")
        if "console_base64" in obj:
            console_bytes = _unb64(_str(obj, "console_base64", ""), "console_base64")
        else:
            console_bytes = console.encode("utf-8", "surrogatepass")
        io_log = tuple(IoWrite(_int(r, "port", "io_log"), _int(r, "size", "io_log"),
                               _int(r, "value", "io_log"))
                       for r in _objects(obj.get("io_log", []), "io_log"))
        dumps = tuple(Dump(_int(d, "address", "dump"),
                           _unb64(_str(d, "data", "dump"), "dump.data"))
                      for d in _objects(obj.get("dump", []), "dump"))
        stats = _object(obj.get("stats"), "stats")
        return cls(
            id=obj.get("id"),
            exit=Exit.from_json(obj.get("exit")),
            regs=Regs.from_json(obj.get("regs")),
            sregs=Sregs.from_json(obj.get("sregs")),
            console=console,
            console_bytes=console_bytes,
            io_log=io_log,
            dumps=dumps,
            stats=RunStats(_int(stats, "exits", "stats"), _int(stats, "run_ns", "stats")),
            console_truncated=obj.get("console_truncated") is True,
            io_log_truncated=obj.get("io_log_truncated") is True,
            paging=_str(obj, "paging", "") if "paging" in obj else None,
            xstate=_xstate(obj["xstate"]) if "xstate" in obj else None,
            msrs=_ints(obj["msrs"], "msrs") if "msrs" in obj else None,
            cpuid=(tuple(_ints(e, "cpuid") for e in _objects(obj["cpuid"], "cpuid"))
                   if "cpuid" in obj else None),
            trace=(tuple(TraceEntry(_int(e, "rip", "trace"), _int(e, "cs", "trace"))
                         for e in _objects(obj["trace"], "trace"))
                   if "trace" in obj else None),
            trace_truncated=obj.get("trace_truncated") is True,
            changes=(tuple(Dump(_int(d, "address", "changes"),
                                _unb64(_str(d, "data", "changes"), "changes.data"))
                           for d in _objects(obj["changes"], "changes"))
                     if "changes" in obj else None),
            changes_truncated=obj.get("changes_truncated") is True,
            raw=obj,
        )


def _ints(value: Any, ctx: str) -> dict[str, int]:
    obj = _object(value, ctx)
    return {k: _int(obj, k, ctx) for k in obj}


def _xstate(value: Any) -> dict[str, int]:
    """An answer's xstate, its ``"0x..."`` registers as integers."""
    obj = _object(value, "xstate")
    out: dict[str, int] = {}
    for k, v in obj.items():
        if _is_wide(k):
            text = _str(obj, k, "xstate")
            digits = text[2:] if text.startswith("0x") else ""
            if not digits or any(c not in string.hexdigits for c in digits):
                raise ProtocolError(f"xstate.{k}: expected \"0x\" and hex digits, "
                                    f"got {text!r}")
            out[k] = int(digits, 16)
        else:
            out[k] = _int(obj, k, "xstate")
    return out


@dataclass(frozen=True, slots=True)
class Kvm:
    """Whether the daemon can run guests now: with ``available``, the KVM API
    version and the CPU modes this host runs; without, the ``reason``."""

    available: bool
    api_version: int | None = None
    modes: tuple[str, ...] = ()
    reason: str | None = None
    paged: str | None = None
    """How ``paged`` mode runs when it is in ``modes``: ``"legacy"`` or
    ``"compat"``."""


@dataclass(frozen=True)
class Ping:
    """The answer to ``ping``: the daemon's version, the protocol's, and KVM."""

    version: str
    protocol: int
    kvm: Kvm
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Ping:
        """The ping result from its answer."""
        kvm = _object(obj.get("kvm"), "kvm")
        available = _bool(kvm, "available", "kvm")
        return cls(
            version=_str(obj, "version", ""),
            protocol=_int(obj, "protocol", ""),
            kvm=Kvm(
                available=available,
                api_version=_int(kvm, "api_version", "kvm") if "api_version" in kvm else None,
                modes=tuple(_str({"m": m}, "m", "kvm.modes") for m in kvm.get("modes", [])),
                reason=_str(kvm, "reason", "kvm") if "reason" in kvm else None,
                paged=_str(kvm, "paged", "kvm") if "paged" in kvm else None,
            ),
            raw=obj,
        )


@dataclass(frozen=True)
class Stats:
    """The answer to ``stats``: the daemon's counters since it started."""

    runs: Mapping[str, int]
    """Runs finished, by exit reason."""
    errors: Mapping[str, int]
    """Error answers sent, by code."""
    runs_in_flight: int
    runs_queued: int
    connections_open: int
    connections_total: int
    uptime_ms: int
    workers: int
    memory_in_use: int
    steps_ns: Mapping[str, int] = field(default_factory=dict)
    """Where the daemon's time for runs went: ``runs``, the runs answered with
    a result, and each step's nanoseconds summed over them (PROTOCOL.md);
    empty from a daemon without them."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Stats:
        """The stats from their answer."""
        s = _object(obj.get("stats"), "stats")

        def counts(key: str) -> dict[str, int]:
            o = _object(s.get(key), f"stats.{key}")
            return {k: _int(o, k, f"stats.{key}") for k in o}

        return cls(
            runs=counts("runs"),
            errors=counts("errors"),
            **{k: _int(s, k, "stats") for k in (
                "runs_in_flight", "runs_queued", "connections_open",
                "connections_total", "uptime_ms", "workers", "memory_in_use")},
            steps_ns=counts("steps_ns") if "steps_ns" in s else {},
            raw=obj,
        )


# --- answers ------------------------------------------------------------------

def decode(line: bytes, expected_id: Any) -> dict[str, Any]:
    """The answer on ``line`` to the request with ``expected_id``: the JSON
    object when it is ``ok``; raises the :class:`DaemonError` it carries
    otherwise, and :class:`ProtocolError` when it cannot be read or is the
    answer to another request.  An error with the id ``null`` is taken as
    the answer too: the daemon sends one before closing a connection
    (``forbidden``, ``busy``) and for a line it could not read."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"the answer is not JSON: {e}: {line[:200]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"the answer is not a JSON object: {line[:200]!r}")
    ok = obj.get("ok")
    rid = obj.get("id")
    if ok is False:
        if rid is not None and rid != expected_id:
            raise ProtocolError(f"an answer with id {rid!r} came for the request {expected_id!r}")
        error = _object(obj.get("error"), "error")
        raise error_for(_str(error, "code", "error"), str(error.get("message", "")), rid)
    if ok is not True:
        raise ProtocolError(f"the answer has no \"ok\": true or false: {line[:200]!r}")
    if rid != expected_id:
        raise ProtocolError(f"an answer with id {rid!r} came for the request {expected_id!r}")
    return obj


def is_closing(error: DaemonError) -> bool:
    """Whether the daemon closes the connection after this error: one sent
    with the id ``null``, as it does for a refused connection (``forbidden``,
    ``busy``) and after a line longer than ``--max-line`` (``too_large``)."""
    return error.id is None


# --- reading JSON -------------------------------------------------------------

def _where(ctx: str, key: str) -> str:
    return f"{ctx}.{key}" if ctx else key


def _object(value: Any, ctx: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{ctx}: expected an object, got {value!r}")
    return value


def _objects(value: Any, ctx: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ProtocolError(f"{ctx}: expected an array, got {value!r}")
    return [_object(v, ctx) for v in value]


def _int(obj: Mapping[str, Any], key: str, ctx: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{_where(ctx, key)}: expected an integer, got {value!r}")
    return value


def _str(obj: Mapping[str, Any], key: str, ctx: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{_where(ctx, key)}: expected a string, got {value!r}")
    return value


def _bool(obj: Mapping[str, Any], key: str, ctx: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"{_where(ctx, key)}: expected true or false, got {value!r}")
    return value


def _unb64(text: str, ctx: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"{ctx}: not base64: {e}") from None


__all__ = ["RunRequest", "Result", "Exit", "Regs", "Sregs", "Segment", "Table", "IoWrite",
           "Dump", "RunStats", "Ping", "Kvm", "Stats", "REGISTERS", "SEGMENTS", "RETURNS",
           "encode", "decode", "is_closing"]
