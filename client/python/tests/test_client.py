#!/usr/bin/env python3
"""Tests of the kvmrun Python package, printed as TAP lines without numbers
("ok - ...", "not ok - ...", "ok - ... # SKIP ...", "# ...") for
tests/test-python.sh to count.

Most tests talk to real daemons tests/test-python.sh started, named by the
environment: KVMRUN_TEST_SOCKET (a plain daemon), KVMRUN_TEST_NOKVM_SOCKET
(--kvm /nonexistent), KVMRUN_TEST_FORBIDDEN_SOCKET (--allow-uid of another
user), KVMRUN_TEST_BUSY_SOCKET (--max-connections 1),
KVMRUN_TEST_LIMITS_SOCKET (--max-line 4K), and with KVM
KVMRUN_TEST_NOFILE_SOCKET, _PID and _LIMIT (a daemon under a low
RLIMIT_NOFILE).  GUESTS is the guest images' directory, KVM_REASON why
guests cannot run here (empty when they can).  The rest talk to a fake
daemon, a thread on a socket of its own, for answers no real daemon gives
on demand.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import kvmrun

KVM_REASON = os.environ.get("KVM_REASON", "")
NEEDS_KVM = f"needs KVM, {KVM_REASON}"
GUESTS = os.environ.get("GUESTS", "")


def env_socket(name: str) -> str:
    path = os.environ.get(name)
    if not path:
        raise unittest.SkipTest(f"${name} is not set (run by tests/test-python.sh)")
    return path


def guest(name: str) -> bytes:
    with open(os.path.join(GUESTS, name), "rb") as f:
        return f.read()


# The answer to a run, as PROTOCOL.md shows it.
RESULT: dict[str, Any] = {
    "id": 1, "ok": True, "exit": {"reason": "hlt"},
    "regs": {"rax": 0, "rbx": 0, "rcx": 0, "rdx": 0, "rsi": 0, "rdi": 0, "rsp": 0, "rbp": 0,
             "r8": 0, "r9": 0, "r10": 0, "r11": 0, "r12": 0, "r13": 0, "r14": 0, "r15": 0,
             "rip": 23, "rflags": 2},
    "sregs": {"cr0": 1610612752, "cr2": 0, "cr3": 0, "cr4": 0, "efer": 0,
              **{s: {"selector": 0, "base": 0}
                 for s in ("cs", "ds", "es", "ss", "fs", "gs", "tr", "ldt")}},
    "console": "Hello, world!\n",
    "io_log": [{"port": 128, "size": 1, "value": 90}],
    "dump": [{"address": 1024, "data": "9A=="}],
    "stats": {"exits": 3, "run_ns": 48211},
}


def run_answer(id: Any, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(json.dumps(RESULT))
    answer["id"] = id
    answer.update(fields)
    return answer


class FakeDaemon:
    """A Unix socket on which a thread calls handler(connection) for each
    client, one after another; what a handler raises fails the test."""

    def __init__(self, handler: Callable[[FakeConnection], object]) -> None:
        self.dir = tempfile.mkdtemp(prefix="kvmrun-fake.")
        self.path = os.path.join(self.dir, "fake.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.handler = handler
        self.errors: list[BaseException] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                self.handler(FakeConnection(sock))
            except BaseException as e:  # noqa: B036 -- reported by close()
                self.errors.append(e)
            finally:
                sock.close()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> FakeDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeConnection:
    """The daemon's end of a connection: lines in, JSON objects out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def readable(self, seconds: float) -> bool:
        return bool(self.buf.count(b"\n")) or bool(select.select([self.sock], [], [], seconds)[0])

    def line(self) -> bytes | None:
        """The next request line, None at end of file."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def request(self) -> dict[str, Any] | None:
        line = self.line()
        if line is None:
            return None
        obj: dict[str, Any] = json.loads(line)
        return obj

    def send(self, obj: Any) -> None:
        self.sock.sendall((obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n")

    def answer_all(self, make: Callable[[dict[str, Any]], Any]) -> None:
        """Answers every request with make(request), until the client closes."""
        while (req := self.request()) is not None:
            self.send(make(req))


def ping_answer(req: dict[str, Any]) -> dict[str, Any]:
    return {"id": req["id"], "ok": True, "version": "9.9", "protocol": 3, "kvm_api": 12,
            "kvm": {"available": True, "api_version": 12, "modes": ["real", "long"],
                    "future": 1},
            "future_field": {"x": [1, 2]}}


# --- the package on its own, against a fake daemon ---------------------------

class TestFake(unittest.TestCase):
    """Answers no real daemon gives on demand."""

    def test_result_fields(self) -> None:
        """a run's answer becomes typed fields, unknown fields ignored"""
        def answer(req: dict[str, Any]) -> Any:
            return run_answer(req["id"], exit={"reason": "hlt", "future": True},
                              future_field=[1, {"a": None}],
                              regs={**RESULT["regs"], "rax": 2**64 - 1, "r16": 5})
        with FakeDaemon(lambda c: c.answer_all(answer)) as fake:
            with kvmrun.Client(fake.path) as client:
                r = client.run(b"\xf4")
        self.assertIsInstance(r, kvmrun.Result)
        self.assertEqual(r.exit.reason, "hlt")
        self.assertTrue(r.halted)
        self.assertEqual(r.regs.rax, 2**64 - 1)
        self.assertEqual(r.regs.rip, 23)
        self.assertEqual(r.regs.rflags, 2)
        self.assertEqual(r.sregs.cr0, 1610612752)
        self.assertEqual(r.sregs.cs, kvmrun.Segment(0, 0))
        self.assertEqual(r.console, "Hello, world!\n")
        self.assertEqual(r.console_bytes, b"Hello, world!\n")
        self.assertEqual(r.io_log, (kvmrun.IoWrite(128, 1, 90),))
        self.assertEqual(r.dumps, (kvmrun.Dump(1024, b"\xf4"),))
        self.assertEqual(r.dump(0x400, 1), b"\xf4")
        self.assertEqual(r.stats, kvmrun.RunStats(3, 48211))
        self.assertFalse(r.console_truncated or r.io_log_truncated)
        self.assertEqual(r.raw["future_field"], [1, {"a": None}])

    def test_state(self) -> None:
        """the CPU state goes out as the protocol writes it and comes back typed"""
        seen: list[dict[str, Any]] = []
        sregs = {**RESULT["sregs"],
                 **{s: {"selector": 8, "base": 0, "limit": 0xffff, "attributes": 0x93}
                    for s in kvmrun.SEGMENTS},
                 "gdt": {"base": 0x1000, "limit": 0x17}, "idt": {"base": 0, "limit": 0x3ff}}

        def answer(req: dict[str, Any]) -> Any:
            seen.append(req)
            if "return" not in req:
                return run_answer(req["id"])
            return run_answer(req["id"], sregs=sregs,
                              xstate={"xmm0": "0x" + "f" * 32, "st7": "0x3fff8000000000000000",
                                      "mxcsr": 0x1f80, "xcr0": 7},
                              msrs={"lstar": 2**64 - 1},
                              cpuid=[{"function": 0, "index": 0, "eax": 0xd, "ebx": 1,
                                      "ecx": 2, "edx": 3}])
        with FakeDaemon(lambda c: c.answer_all(answer)) as fake:
            with kvmrun.Client(fake.path) as client:
                r = client.run(b"\xf4", segments={"ds": {"selector": 16, "base": 1 << 20,
                                                         "limit": 2**32 - 1,
                                                         "attributes": 0x8093}},
                               xstate={"xmm3": 1, "ymm4": 2**255, "st0": 0x3fff << 64,
                                       "mxcsr": 0x1f80, "k1": 5},
                               msrs={"lstar": 0xffffffff81000000},
                               cpuid=[{"function": 7, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}],
                               returns=["xstate", "msrs", "descriptors", "cpuid"])
                plain = client.run(b"\xf4")
        req = seen[0]
        self.assertEqual(req["xstate"], {"xmm3": "0x1", "ymm4": "0x8" + "0" * 63,
                                         "st0": "0x3fff0000000000000000",
                                         "mxcsr": 0x1f80, "k1": 5})
        self.assertEqual(req["msrs"], {"lstar": 0xffffffff81000000})
        self.assertEqual(req["cpuid"], [{"function": 7, "eax": 0, "ebx": 0, "ecx": 0,
                                         "edx": 0}])
        self.assertEqual(req["return"], ["xstate", "msrs", "descriptors", "cpuid"])
        self.assertEqual(req["segments"]["ds"]["attributes"], 0x8093)
        self.assertFalse({"xstate", "msrs", "cpuid", "return"} & seen[1].keys(),
                         "a plain run sends none of them")
        assert r.xstate is not None
        self.assertEqual(r.xstate, {"xmm0": 2**128 - 1, "st7": 0x3fff8000000000000000,
                                    "mxcsr": 0x1f80, "xcr0": 7})
        self.assertEqual(r.msrs, {"lstar": 2**64 - 1})
        self.assertEqual(r.cpuid, ({"function": 0, "index": 0, "eax": 0xd, "ebx": 1,
                                    "ecx": 2, "edx": 3},))
        self.assertEqual(r.sregs.ds, kvmrun.Segment(8, 0, 0xffff, 0x93))
        self.assertEqual((r.sregs.gdt, r.sregs.idt),
                         (kvmrun.Table(0x1000, 0x17), kvmrun.Table(0, 0x3ff)))
        self.assertEqual((plain.xstate, plain.msrs, plain.cpuid, plain.sregs.gdt),
                         (None, None, None, None))
        self.assertEqual(plain.sregs.ds, kvmrun.Segment(0, 0))

    def test_stepping(self) -> None:
        """max_instructions, trace and changes go out; step_limit, trace and changes come back"""
        seen: list[dict[str, Any]] = []

        def answer(req: dict[str, Any]) -> Any:
            seen.append(req)
            if "max_instructions" not in req:
                return run_answer(req["id"])
            return run_answer(req["id"], exit={"reason": "step_limit"},
                              trace=[{"rip": 0, "cs": 51}, {"rip": 3, "cs": 51}],
                              trace_truncated=True,
                              changes=[{"address": 0x1ffff8, "data": "AwAAAAAAAAA="}])
        with FakeDaemon(lambda c: c.answer_all(answer)) as fake:
            with kvmrun.Client(fake.path) as client:
                r = client.run(b"\xf4", "long", max_instructions=2, trace=True, changes=True)
                plain = client.run(b"\xf4")
        self.assertEqual((seen[0]["max_instructions"], seen[0]["trace"], seen[0]["changes"]),
                         (2, True, True))
        self.assertFalse({"max_instructions", "trace", "changes"} & seen[1].keys(),
                         "a plain run sends none of them")
        self.assertEqual(r.exit.reason, "step_limit")
        self.assertEqual(r.trace, (kvmrun.TraceEntry(0, 51), kvmrun.TraceEntry(3, 51)))
        self.assertTrue(r.trace_truncated)
        self.assertEqual(r.changes, (kvmrun.Dump(0x1ffff8, b"\x03" + bytes(7)),))
        self.assertFalse(r.changes_truncated)
        self.assertEqual((plain.trace, plain.changes), (None, None))

    def test_exit_details(self) -> None:
        """each exit reason's details are typed, an unknown reason kept as its string"""
        exits = [
            {"reason": "io", "port": 128, "direction": "out", "size": 1, "count": 1,
             "data": "Qg=="},
            {"reason": "mmio", "address": 2**40, "is_write": True, "length": 4,
             "data": "AQIDBA=="},
            {"reason": "exception", "vector": 14, "name": "#PF", "error_code": 2,
             "rip": 0x1000, "cs": 8, "cr2": 0xdead000},
            {"reason": "internal_error", "suberror": 1, "data": [1, 2, 3],
             "instruction": "66 0f ef c0"},
            {"reason": "output_limit", "limit": "console"},
            {"reason": "other", "kvm_exit_reason": 99},
            {"reason": "fail_entry", "hardware_entry_failure_reason": 7},
            {"reason": "teleported", "where": "mars", "data": "AA=="},
        ]
        with FakeDaemon(lambda c: c.answer_all(
                lambda req: run_answer(req["id"], exit=exits[req["id"] - 1]))) as fake:
            with kvmrun.Client(fake.path) as client:
                got = [client.run(b"\xf4").exit for _ in exits]
        io, mmio, exc, internal, limit, other, fail, unknown = got
        self.assertEqual((io.reason, io.port, io.direction, io.size, io.count, io.data),
                         ("io", 128, "out", 1, 1, b"B"))
        self.assertEqual((mmio.address, mmio.is_write, mmio.length, mmio.data),
                         (2**40, True, 4, b"\x01\x02\x03\x04"))
        self.assertEqual((exc.vector, exc.name, exc.error_code, exc.rip, exc.cs, exc.cr2),
                         (14, "#PF", 2, 0x1000, 8, 0xdead000))
        self.assertEqual((internal.suberror, internal.kvm_data, internal.instruction),
                         (1, (1, 2, 3), "66 0f ef c0"))
        self.assertEqual(limit.limit, "console")
        self.assertEqual(other.kvm_exit_reason, 99)
        self.assertEqual(fail.hardware_entry_failure_reason, 7)
        self.assertEqual((unknown.reason, unknown.data), ("teleported", b"\0"))

    def test_console_base64(self) -> None:
        """console_bytes are the exact bytes of console_base64; truncation flags read"""
        with FakeDaemon(lambda c: c.answer_all(lambda req: run_answer(
                req["id"], console="a\ufffdb", console_base64="Yf9i",
                console_truncated=True, io_log_truncated=True))) as fake:
            r = kvmrun.Client(fake.path).run(b"\xf4")
        self.assertEqual((r.console, r.console_bytes), ("a\ufffdb", b"a\xffb"))
        self.assertTrue(r.console_truncated and r.io_log_truncated)
        with self.assertRaises(KeyError):
            r.dump(0x400, 2)

    def test_ping_stats(self) -> None:
        """ping and stats answers become typed fields, unknown fields ignored"""
        def answer(req: dict[str, Any]) -> Any:
            if req["op"] == "ping":
                return ping_answer(req)
            return {"id": req["id"], "ok": True, "future": 1, "stats": {
                "runs": {"hlt": 10, "warp": 1}, "errors": {"busy": 2},
                "runs_in_flight": 1, "runs_queued": 2, "connections_open": 3,
                "connections_total": 4, "uptime_ms": 5, "workers": 6,
                "memory_in_use": 7, "steps_ns": {"runs": 2, "parse": 8},
                "future": [1]}}
        with FakeDaemon(lambda c: c.answer_all(answer)) as fake:
            with kvmrun.Client(fake.path) as client:
                p, s = client.ping(), client.stats()
        self.assertEqual(p.kvm, kvmrun.Kvm(True, 12, ("real", "long"), None))
        self.assertEqual((p.version, p.protocol), ("9.9", 3))
        self.assertEqual(s.runs, {"hlt": 10, "warp": 1})
        self.assertEqual((s.errors, s.runs_in_flight, s.runs_queued, s.connections_open,
                          s.connections_total, s.uptime_ms, s.workers, s.memory_in_use),
                         ({"busy": 2}, 1, 2, 3, 4, 5, 6, 7))
        self.assertEqual(s.steps_ns, {"runs": 2, "parse": 8})
        older = answer({"id": 1, "op": "stats"})
        del older["stats"]["steps_ns"]
        self.assertEqual(kvmrun.Stats.from_json(older).steps_ns, {})

    def test_paging(self) -> None:
        """a paged run's "paging" and ping's "kvm.paged" are read; absent, None"""
        def answer(req: dict[str, Any]) -> Any:
            if req["op"] == "ping":
                obj = ping_answer(req)
                obj["kvm"].update(modes=["real", "paged"], paged="compat")
                return obj
            if req.get("mode") == "paged":
                return run_answer(req["id"], paging="compat")
            return run_answer(req["id"])
        with FakeDaemon(lambda c: c.answer_all(answer)) as fake:
            with kvmrun.Client(fake.path) as client:
                paged, real, p = client.run(b"\xf4", mode="paged"), client.run(b"\xf4"), client.ping()
        self.assertEqual((paged.paging, real.paging), ("compat", None))
        self.assertEqual((p.kvm.modes, p.kvm.paged), (("real", "paged"), "compat"))

    def test_error_classes(self) -> None:
        """each error code answered raises its class; an unknown code a DaemonError keeping it"""
        codes = ["bad_request", "too_large", "busy", "unsupported", "forbidden", "internal",
                 "unavailable", "rate_limited"]
        classes = [kvmrun.BadRequest, kvmrun.TooLarge, kvmrun.Busy, kvmrun.Unsupported,
                   kvmrun.Forbidden, kvmrun.Internal, kvmrun.Unavailable, kvmrun.DaemonError]
        with FakeDaemon(lambda c: c.answer_all(lambda req: {
                "id": req["id"], "ok": False, "future": 1,
                "error": {"code": codes[req["id"] - 1], "message": f"m{req['id']}",
                          "hint": "x"}})) as fake:
            with kvmrun.Client(fake.path) as client:
                for i, (code, cls) in enumerate(zip(codes, classes), 1):
                    with self.assertRaises(kvmrun.DaemonError) as cm:
                        client.run(b"\xf4")
                    self.assertIs(type(cm.exception), cls)
                    self.assertEqual((cm.exception.code, cm.exception.message, cm.exception.id),
                                     (code, f"m{i}", i))
                    self.assertEqual(str(cm.exception), f"{code}: m{i}")
            self.assertEqual(fake.connections, 1, "errors keep the connection")
        self.assertEqual(set(kvmrun.ERRORS), set(codes[:-1]))

    def test_request_encoding(self) -> None:
        """every request field of PROTOCOL.md is sent, on one compact line, with our own ids"""
        lines: list[bytes] = []

        def handler(c: FakeConnection) -> None:
            while (line := c.line()) is not None:
                lines.append(line)
                c.send(run_answer(json.loads(line)["id"]))
        with FakeDaemon(handler) as fake:
            with kvmrun.Client(fake.path) as client:
                client.run(b"\x90\xf4", "long", ring=3, memory_size=1 << 22,
                           load_address=0x10000, regs={"rax": 2**64 - 1, "rip": 0x10000},
                           timeout_ms=50, regions=[(0x5000, b"abc"), (2**33, b"\0")],
                           log_ports=[0x80, 0xffff], dump=[(0x400, 4), (0x5000, 3)])
                client.run(b"\xf4", segments={"cs": 0x100, "ds": 0xffff})
                client.submit(kvmrun.RunRequest(b"\xf4", mode="protected"))
        first, second, third = (json.loads(l) for l in lines)
        self.assertNotIn(b" ", lines[0])
        self.assertEqual(first, {
            "id": 1, "op": "run", "mode": "long", "image": "kPQ=", "ring": 3,
            "memory_size": 1 << 22, "load_address": 0x10000,
            "regs": {"rax": 2**64 - 1, "rip": 0x10000}, "timeout_ms": 50,
            "regions": [{"address": 0x5000, "data": "YWJj"}, {"address": 2**33, "data": "AA=="}],
            "log_ports": [0x80, 0xffff],
            "dump": [{"address": 0x400, "length": 4}, {"address": 0x5000, "length": 3}]})
        self.assertEqual(second, {"id": 2, "op": "run", "mode": "real", "image": "9A==",
                                  "segments": {"cs": 0x100, "ds": 0xffff}})
        self.assertEqual(third, {"id": 3, "op": "run", "mode": "protected", "image": "9A=="})

    def test_id_mismatch(self) -> None:
        """an answer with another id raises ProtocolError; the next call reconnects"""
        def handler(c: FakeConnection) -> None:
            req = c.request()
            assert req is not None
            c.send(run_answer(req["id"] + 1000))
            c.line()
        with FakeDaemon(handler) as fake:
            with kvmrun.Client(fake.path) as client:
                with self.assertRaisesRegex(kvmrun.ProtocolError, "id 1001"):
                    client.run(b"\xf4")
                with self.assertRaisesRegex(kvmrun.ProtocolError, "id 1002"):
                    client.run(b"\xf4")
            self.assertEqual(fake.connections, 2)

    def test_not_json(self) -> None:
        """an answer that is not a JSON object raises ProtocolError"""
        for bad in (b"{", b"[1]", b'{"id":1}', b"\xff", b'{"id":1,"ok":true}'):
            def handler(c: FakeConnection, bad: bytes = bad) -> None:
                c.line()
                c.send(bad)
                c.line()
            with FakeDaemon(handler) as fake:
                with kvmrun.Client(fake.path) as client:
                    with self.assertRaises(kvmrun.ProtocolError, msg=repr(bad)):
                        client.ping()

    def test_disconnected(self) -> None:
        """a daemon closing mid-pipeline: the answers before, then Disconnected"""
        def handler(c: FakeConnection) -> None:
            for _ in range(2):
                req = c.request()
                if req is None:
                    return
                c.send(run_answer(req["id"]))
        with FakeDaemon(handler) as fake:
            with kvmrun.Client(fake.path) as client:
                got = []
                with self.assertRaises(kvmrun.Disconnected) as cm:
                    for r in client.run_many([kvmrun.RunRequest(b"\xf4")] * 5, window=5):
                        got.append(r)
                self.assertEqual(len(got), 2)
                self.assertIsInstance(cm.exception, ConnectionError)
                self.assertTrue(client.run(b"\xf4").halted, "a new connection serves")
        with self.assertRaisesRegex(kvmrun.Disconnected, "cannot connect"):
            kvmrun.Client("/nonexistent/kvmrun.sock").ping()

    def test_timeout(self) -> None:
        """Client(timeout=) bounds the wait for an answer: Disconnected"""
        with FakeDaemon(lambda c: (c.line(), c.line())) as fake:
            with kvmrun.Client(fake.path, timeout=0.2) as client:
                start = time.monotonic()
                with self.assertRaisesRegex(kvmrun.Disconnected, "within 0.2 s"):
                    client.ping()
                self.assertLess(time.monotonic() - start, 5)

    def test_socket_path(self) -> None:
        """path None: $KVMRUN_SOCKET, else /run/kvmrun/kvmrun.sock"""
        saved = os.environ.pop("KVMRUN_SOCKET", None)
        try:
            self.assertEqual(kvmrun.Client().path, "/run/kvmrun/kvmrun.sock")
            os.environ["KVMRUN_SOCKET"] = "/tmp/x.sock"
            self.assertEqual(kvmrun.Client().path, "/tmp/x.sock")
            self.assertEqual(kvmrun.AsyncClient().path, "/tmp/x.sock")
            self.assertEqual(kvmrun.Client("/y.sock").path, "/y.sock")
        finally:
            os.environ.pop("KVMRUN_SOCKET", None)
            if saved is not None:
                os.environ["KVMRUN_SOCKET"] = saved


def window_handler(total: int, seen: list[int]) -> Callable[[FakeConnection], None]:
    """A fake daemon that answers only when the client has stopped sending,
    one answer at a time (rax = the request's place), and records in seen
    how many requests were unanswered at each answer."""
    def handler(c: FakeConnection) -> None:
        received: list[int] = []
        answered = 0
        while answered < total:
            if len(received) < total and c.readable(0.1):
                req = c.request()
                assert req is not None
                received.append(req["id"])
                continue
            seen.append(len(received) - answered)
            c.send(run_answer(received[answered],
                              regs={**RESULT["regs"], "rax": answered}))
            answered += 1
        c.line()
    return handler


class TestWindow(unittest.TestCase):
    def test_window(self) -> None:
        """run_many keeps at most window requests unanswered and yields in order"""
        seen: list[int] = []
        with FakeDaemon(window_handler(12, seen)) as fake:
            with kvmrun.Client(fake.path) as client:
                got = [r.regs.rax for r in
                       client.run_many(iter([kvmrun.RunRequest(b"\xf4")] * 12), window=3)]
        self.assertEqual(got, list(range(12)))
        self.assertEqual(max(seen), 3)

    def test_async_window(self) -> None:
        """AsyncClient.run_many keeps at most window requests unanswered and yields in order"""
        seen: list[int] = []

        async def main(path: str) -> list[int]:
            async with kvmrun.AsyncClient(path) as client:
                return [r.regs.rax async for r in
                        client.run_many([kvmrun.RunRequest(b"\xf4")] * 12, window=4)]
        with FakeDaemon(window_handler(12, seen)) as fake:
            got = asyncio.run(main(fake.path))
        self.assertEqual(got, list(range(12)))
        self.assertEqual(max(seen), 4)

    def test_async_disconnected(self) -> None:
        """AsyncClient: a daemon closing mid-pipeline raises Disconnected for the rest"""
        def handler(c: FakeConnection) -> None:
            req = c.request()
            assert req is not None
            c.send(ping_answer(req))
            c.request()

        async def main(path: str) -> list[object]:
            async with kvmrun.AsyncClient(path) as client:
                return list(await asyncio.gather(client.ping(), client.ping(), client.stats(),
                                                 return_exceptions=True))
        with FakeDaemon(handler) as fake:
            got = asyncio.run(main(fake.path))
        self.assertIsInstance(got[0], kvmrun.Ping)
        self.assertIsInstance(got[1], kvmrun.Disconnected)
        self.assertIsInstance(got[2], kvmrun.Disconnected)

        async def nowhere() -> None:
            await kvmrun.AsyncClient("/nonexistent/kvmrun.sock").ping()
        with self.assertRaisesRegex(kvmrun.Disconnected, "cannot connect"):
            asyncio.run(nowhere())


# --- through the real daemon ---------------------------------------------------

class TestDaemon(unittest.TestCase):
    """A plain daemon: what works without KVM, and runs with it."""

    path: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.path = env_socket("KVMRUN_TEST_SOCKET")

    def client(self) -> kvmrun.Client:
        return kvmrun.Client(self.path, timeout=60)

    def test_ping(self) -> None:
        """ping: protocol 3, and kvm as this host has it"""
        with self.client() as c:
            p = c.ping()
        self.assertEqual(p.protocol, kvmrun.PROTOCOL)
        self.assertRegex(p.version, r"^\d+\.\d+")
        self.assertEqual(p.kvm.available, not KVM_REASON)
        if KVM_REASON:
            self.assertEqual((p.kvm.reason, p.kvm.api_version), (KVM_REASON, None))
        else:
            self.assertEqual(p.kvm.api_version, 12)
            self.assertIn("real", p.kvm.modes)

    def test_stats(self) -> None:
        """stats: every exit reason and error code counted"""
        with self.client() as c:
            s = c.stats()
        self.assertIn("hlt", s.runs)
        self.assertEqual(set(s.errors), set(kvmrun.ERRORS))
        self.assertGreaterEqual(s.connections_open, 1)
        self.assertGreaterEqual(s.workers, 1)
        self.assertIn("first_entry", s.steps_ns)

    def test_bad_request(self) -> None:
        """bad_request: malformed requests raise BadRequest naming the field"""
        image = guest("hello-real.bin")
        cases: list[tuple[dict[str, Any], str]] = [
            ({"image": b""}, "image"),
            ({"image": image, "mode": "fast"}, 'unknown mode "fast"'),
            ({"image": image, "mode": "long", "segments": {}}, "segments"),
            ({"image": image, "regs": {"rax": 1, "eax": 1}}, 'unknown field "eax"'),
            ({"image": image, "memory_size": -4096}, "memory_size: -4096 is negative"),
            ({"image": image, "memory_size": 4097}, "memory_size"),
            ({"image": image, "ring": 3}, "ring"),
            ({"image": image, "regs": {"rax": 2**64}}, "regs.rax"),
            ({"image": image, "segments": {"cs": 65536}}, "segments.cs"),
            ({"image": image, "dump": [(0x400, 0)]}, "dump[0].length"),
            ({"image": image, "timeout_ms": 0}, "timeout_ms"),
            ({"image": image, "xstate": {"xmm3": 1, "ymm3": 2}},
             "xstate.ymm3: xmm3 is given too"),
            ({"image": image, "xstate": {"xmm0": 2**128}}, "xstate.xmm0"),
            ({"image": image, "msrs": {"ia32_foo": 1}}, 'unknown MSR "ia32_foo"'),
            ({"image": image, "returns": ["fpu"]}, 'return[0]: unknown part "fpu"'),
        ]
        with self.client() as c:
            for kw, text in cases:
                with self.assertRaises(kvmrun.BadRequest, msg=repr(kw)[:100]) as cm:
                    c.run(**kw)
                self.assertIn(text, cm.exception.message)
                self.assertEqual(cm.exception.code, "bad_request")
            self.assertEqual(c.ping().protocol, 3, "the connection serves on")

    def test_too_large(self) -> None:
        """too_large: a size past the daemon's limit raises TooLarge naming the option"""
        image = guest("hello-real.bin")
        cases: list[tuple[dict[str, Any], str]] = [
            ({"memory_size": 512 << 20}, "--max-memory"),
            ({"timeout_ms": 3600_000}, "--max-timeout-ms"),
            ({"dump": [(0x400, 1)] * 65}, "--max-dumps"),
            ({"log_ports": list(range(65))}, "--max-log-ports"),
        ]
        with self.client() as c:
            for kw, option in cases:
                with self.assertRaises(kvmrun.TooLarge) as cm:
                    c.run(image, **kw)
                self.assertIn(option, cm.exception.message)
            self.assertEqual(c.ping().protocol, 3, "the connection serves on")

    def test_every_field(self) -> None:
        """a run with every request field passes the daemon's checks"""
        with self.client() as c:
            try:
                r = c.run(guest("hello-real.bin"), "real", ring=0, memory_size=1 << 21,
                          load_address=0, regs={"r15": 0x1234, "rsp": 0x7000},
                          segments={"cs": 0, "ds": 0, "es": 0, "ss": 0, "fs": 0, "gs": 0},
                          timeout_ms=5000, regions=[(0x5000, b"kvmrun")],
                          log_ports=[0x80], dump=[(0x400, 1), (0x5000, 6)])
            except kvmrun.Unavailable:
                if KVM_REASON:
                    return  # it passed validation: only then is a run unavailable
                raise
        self.assertTrue(r.halted, r.exit)
        self.assertEqual(r.console, "Hello, world!\n")
        self.assertEqual(r.dump(0x400, 1), b"\x2a")
        self.assertEqual(r.dump(0x5000, 6), b"kvmrun")
        self.assertEqual(r.regs.r15, 0x1234)
        self.assertEqual(r.regs.rbx & 0xffff, 0x4b4f)

    def test_pipeline_errors_in_order(self) -> None:
        """run_many with a window smaller than the batch: answers and errors in order"""
        image = guest("hello-real.bin")
        reqs = [kvmrun.RunRequest(image, memory_size=None if i % 3 == 0 else 4096 * i + 1)
                for i in range(1, 61)]
        with self.client() as c:
            got = list(c.run_many(reqs, window=7, return_exceptions=True))
            self.assertEqual(len(got), 60)
            for i, r in enumerate(got, 1):
                if i % 3 != 0:
                    self.assertIsInstance(r, kvmrun.BadRequest)
                    assert isinstance(r, kvmrun.BadRequest)
                    self.assertIn(f"memory_size: {4096 * i + 1} ", r.message)
                elif KVM_REASON:
                    self.assertIsInstance(r, kvmrun.Unavailable)
                else:
                    self.assertIsInstance(r, kvmrun.Result)
            # Without return_exceptions the first error is raised at its place.
            head = [] if KVM_REASON else [kvmrun.RunRequest(image)] * 2
            batch = head + [kvmrun.RunRequest(image, memory_size=1)] + [
                kvmrun.RunRequest(image)] * 5
            done = []
            with self.assertRaises(kvmrun.BadRequest) as cm:
                for r in c.run_many(batch, window=3):
                    done.append(r)
            self.assertIn("memory_size: 1 ", cm.exception.message)
            self.assertEqual(len(done), len(head))
            self.assertEqual(c.ping().protocol, 3, "the client serves on after an abandoned batch")

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_pipeline_order(self) -> None:
        """run_many of 200 real runs, window 8: results in order (r15 = place)"""
        image = guest("hello-real.bin")
        reqs = (kvmrun.RunRequest(image, regs={"r15": i}) for i in range(200))
        with self.client() as c:
            got = [(r.exit.reason, r.regs.r15) for r in c.run_many(reqs, window=8)]
        self.assertEqual(got, [("hlt", i) for i in range(200)])

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_run_real(self) -> None:
        """a real guest through the real daemon: hello-real halts, console, regs, dump"""
        with self.client() as c:
            r = c.run(guest("hello-real.bin"), dump=[(0x400, 4)])
        self.assertEqual(r.exit.reason, "hlt")
        self.assertEqual(r.console, "Hello, world!\n")
        self.assertEqual(r.console_bytes, b"Hello, world!\n")
        self.assertEqual(r.regs.rbx & 0xffff, 0x4b4f)
        self.assertEqual(r.dump(0x400, 1), b"\x2a")
        self.assertEqual(len(r.dump(0x400, 4)), 4)
        self.assertGreater(r.stats.exits, 0)

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_run_long_ring3(self) -> None:
        """hello-long at --mode long --ring 3 halts with its console"""
        with self.client() as c:
            r = c.run(guest("hello-long.bin"), "long", ring=3, dump=[(0x400, 1)])
        self.assertEqual((r.exit.reason, r.console), ("hlt", "Hello, world!\n"))
        self.assertEqual(r.dump(0x400, 1), b"\x2a")
        self.assertEqual(r.regs.rbx, 0x4b4f)
        self.assertEqual(r.sregs.cs.selector & 3, 3)

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_io(self) -> None:
        """exit io with its bytes, and log_ports as typed io_log records"""
        image = guest("out-port-real.bin")
        with self.client() as c:
            r = c.run(image)
            self.assertEqual((r.exit.reason, r.exit.port, r.exit.direction, r.exit.size,
                              r.exit.data), ("io", 0x80, "out", 1, b"\x42"))
            r = c.run(image, log_ports=[0x80])
        self.assertEqual(r.exit.reason, "hlt")
        self.assertEqual(r.io_log, (kvmrun.IoWrite(0x80, 1, 0x42), kvmrun.IoWrite(0x80, 1, 0x43)))

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_unsupported(self) -> None:
        """unsupported: a mode this host's KVM lacks raises Unsupported"""
        with self.client() as c:
            modes = c.ping().kvm.modes
            missing = [m for m in ("real", "protected", "paged", "long") if m not in modes]
            if not missing:
                self.skipTest("this host runs every mode")
            with self.assertRaises(kvmrun.Unsupported) as cm:
                c.run(guest(f"hello-{missing[0]}.bin"), missing[0])
            self.assertIn(missing[0], cm.exception.message)

    def test_async(self) -> None:
        """AsyncClient through the daemon: ping, concurrent calls and run_many in order"""
        image = guest("hello-real.bin")

        async def main() -> None:
            async with kvmrun.AsyncClient(self.path) as c:
                p = await c.ping()
                self.assertEqual(p.protocol, 3)
                got = await asyncio.gather(
                    *(c.run(image, memory_size=4096 * i + 1) for i in range(10)),
                    c.stats(), return_exceptions=True)
                for i, e in enumerate(got[:10]):
                    self.assertIsInstance(e, kvmrun.BadRequest)
                    self.assertIn(f"memory_size: {4096 * i + 1} ", str(e))
                self.assertIsInstance(got[10], kvmrun.Stats)
                reqs = [kvmrun.RunRequest(image, regs={"r15": i},
                                          memory_size=None if i % 2 else 4097)
                        for i in range(30)]
                n = 0
                async for r in c.run_many(reqs, window=4, return_exceptions=True):
                    if n % 2 == 0:
                        self.assertIsInstance(r, kvmrun.BadRequest)
                    elif KVM_REASON:
                        self.assertIsInstance(r, kvmrun.Unavailable)
                    else:
                        assert isinstance(r, kvmrun.Result)
                        self.assertEqual((r.exit.reason, r.regs.r15), ("hlt", n))
                    n += 1
                self.assertEqual(n, 30)
                with self.assertRaises(kvmrun.TooLarge):
                    await c.run(image, memory_size=1 << 30)
                if not KVM_REASON:
                    r = await c.run(image)
                    self.assertEqual(r.console, "Hello, world!\n")
        asyncio.run(main())

    def test_cli(self) -> None:
        """python3 -m kvmrun: ping, and run with kvmrun-client's exit status"""
        env = dict(os.environ, KVMRUN_SOCKET=self.path)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "kvmrun", *args], env=env,
                                  capture_output=True, text=True, timeout=60)
        p = cli("ping")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["protocol"], 3)
        p = cli("run", os.path.join(GUESTS, "hello-long.bin"), "--mode", "long")
        if KVM_REASON:
            self.assertEqual(p.returncode, 5, p.stderr)
            self.assertIn("unavailable", p.stderr)
        else:
            self.assertEqual((p.returncode, p.stdout), (0, "Hello, world!\n"), p.stderr)
        p = cli("run", os.path.join(GUESTS, "hello-long.bin"), "--mode", "fast")
        self.assertEqual(p.returncode, 3, p.stderr)
        p = cli("--socket", "/nonexistent/kvmrun.sock", "ping")
        self.assertEqual(p.returncode, 4, p.stderr)


class TestErrorDaemons(unittest.TestCase):
    """Each remaining error code through a daemon set up to give it."""

    def test_unavailable(self) -> None:
        """unavailable: kvmrund --kvm /nonexistent answers a run with Unavailable"""
        path = env_socket("KVMRUN_TEST_NOKVM_SOCKET")
        with kvmrun.Client(path) as c:
            p = c.ping()
            self.assertFalse(p.kvm.available)
            self.assertIn("/nonexistent", p.kvm.reason or "")
            with self.assertRaises(kvmrun.Unavailable) as cm:
                c.run(guest("hello-real.bin"))
            self.assertIn("/nonexistent", cm.exception.message)
            with self.assertRaises(kvmrun.BadRequest):
                c.run(b"")  # a bad request is still bad_request

        async def main() -> None:
            async with kvmrun.AsyncClient(path) as c:
                with self.assertRaises(kvmrun.Unavailable):
                    await c.run(guest("hello-real.bin"))
        asyncio.run(main())

    def test_forbidden(self) -> None:
        """forbidden: kvmrund --allow-uid of another user answers with Forbidden"""
        path = env_socket("KVMRUN_TEST_FORBIDDEN_SOCKET")
        with kvmrun.Client(path) as c:
            def run() -> object:
                return c.run(guest("hello-real.bin"))
            for call in (c.ping, run):
                with self.assertRaises(kvmrun.Forbidden) as cm:
                    call()
                self.assertIn(f"uid {os.getuid()}", cm.exception.message)
                self.assertIsNone(cm.exception.id)
            with self.assertRaises(kvmrun.Forbidden):
                list(c.run_many([kvmrun.RunRequest(b"\xf4")] * 5, window=2))

        async def main() -> None:
            async with kvmrun.AsyncClient(path) as c:
                with self.assertRaises(kvmrun.Forbidden):
                    await c.ping()
                # Each a new connection, refused again.  The daemon answers
                # and closes at once, so the request is often written into a
                # closed socket: the answer must still come (it was lost one
                # time in ten before the client read it first).
                for _ in range(100):
                    with self.assertRaises(kvmrun.Forbidden):
                        await c.ping()
        asyncio.run(main())

    def test_busy(self) -> None:
        """busy: past kvmrund --max-connections 1 a client gets Busy, and is served after"""
        path = env_socket("KVMRUN_TEST_BUSY_SOCKET")
        held = socket.socket(socket.AF_UNIX)
        held.settimeout(10)
        held.connect(path)
        held.sendall(b'{"id":0,"op":"ping"}\n')
        held.recv(65536)  # the daemon has it
        with kvmrun.Client(path, timeout=10) as c:
            with self.assertRaises(kvmrun.Busy) as cm:
                c.ping()
            self.assertIn("--max-connections", cm.exception.message)
            self.assertIsNone(cm.exception.id)
            held.close()
            deadline = time.monotonic() + 5
            while True:
                try:
                    self.assertEqual(c.ping().protocol, 3)
                    break
                except kvmrun.Busy:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def test_too_large_line(self) -> None:
        """too_large: a line past kvmrund --max-line 4K; the daemon closes, the client reconnects"""
        path = env_socket("KVMRUN_TEST_LIMITS_SOCKET")
        with kvmrun.Client(path, timeout=10) as c:
            with self.assertRaises(kvmrun.TooLarge) as cm:
                c.run(b"\x90" * 8192)
            self.assertIn("--max-line", cm.exception.message)
            self.assertEqual(c.ping().protocol, 3)
            with self.assertRaises(kvmrun.TooLarge):
                c.run(b"\x90" * 8192)
            with self.assertRaises(kvmrun.BadRequest):
                c.run(b"\x90", "fast")

    @unittest.skipIf(KVM_REASON, NEEDS_KVM)
    def test_internal(self) -> None:
        """internal: KVM_CREATE_VM failing (no descriptor left) raises Internal naming the ioctl"""
        path = env_socket("KVMRUN_TEST_NOFILE_SOCKET")
        pid = int(os.environ["KVMRUN_TEST_NOFILE_PID"])
        nofile = int(os.environ["KVMRUN_TEST_NOFILE_LIMIT"])

        def free_fds() -> int:
            return nofile - len([n for n in os.listdir(f"/proc/{pid}/fd") if int(n) < nofile])

        def wait_free(n: int) -> None:
            deadline = time.monotonic() + 5
            while free_fds() != n and time.monotonic() < deadline:
                time.sleep(0.01)

        held: list[kvmrun.Client] = []
        try:
            while free_fds() > 0:
                before = free_fds()
                c = kvmrun.Client(path, timeout=10)
                c.ping()
                held.append(c)
                wait_free(before - 1)
            # 1 MiB: a size no VM is prepared ahead for.
            with self.assertRaises(kvmrun.Internal) as cm:
                held[-1].run(guest("hello-real.bin"), memory_size=1 << 20)
            self.assertIn("KVM_CREATE_VM", cm.exception.message)
        finally:
            for c in held:
                c.close()


# --- TAP ---------------------------------------------------------------------

class TapResult(unittest.TestResult):
    """Prints each test as a TAP line without a number."""

    def name(self, test: unittest.TestCase) -> str:
        doc = test.shortDescription()
        return f"python: {doc or test.id().rsplit('.', 1)[-1]}"

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        print(f"ok - {self.name(test)}", flush=True)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        print(f"ok - {self.name(test)} # SKIP {reason}", flush=True)

    def _fail(self, test: unittest.TestCase, err: Any) -> None:
        print(f"not ok - {self.name(test)}", flush=True)
        for line in "".join(traceback.format_exception(*err)).splitlines():
            print(f"# {line}", flush=True)

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._fail(test, err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._fail(test, err)
        else:  # a class set-up that failed
            print(f"not ok - python: {test}", flush=True)


def main() -> int:
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = TapResult()
    suite.run(result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
