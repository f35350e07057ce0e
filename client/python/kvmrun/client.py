"""The blocking client: :class:`Client`."""

from __future__ import annotations

import errno
import os
import select
import socket
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar, overload

from .errors import DaemonError, Disconnected, ProtocolError
from .types import Ping, Result, RunRequest, Stats, decode, encode, is_closing

T = TypeVar("T")

DEFAULT_SOCKET = "/run/kvmrun/kvmrun.sock"
"""Where kvmrund listens unless told otherwise."""


def _same(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


def socket_path(path: str | os.PathLike[str] | None = None) -> str:
    """The socket to use: ``path``, else ``$KVMRUN_SOCKET``, else :data:`DEFAULT_SOCKET`."""
    if path is not None:
        return os.fspath(path)
    return os.environ.get("KVMRUN_SOCKET") or DEFAULT_SOCKET


class Client:
    """A connection to kvmrund, made on first use and made again after the
    daemon closed it.

    ``path`` is the daemon's socket (default ``$KVMRUN_SOCKET`` or
    ``/run/kvmrun/kvmrun.sock``); ``timeout``, in seconds, bounds each wait
    for the daemon (``None``: wait as long as it takes).  Not for use by
    several threads at once; use one client per thread, or
    :class:`kvmrun.AsyncClient`.  Use it as a context manager, or call
    :meth:`close`::

        with kvmrun.Client() as client:
            result = client.run(image, mode="long")
            print(result.console, result.exit.reason, hex(result.regs.rax))
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 timeout: float | None = None) -> None:
        self.path = socket_path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        self._inbuf = bytearray()
        self._last_id = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; runs still going on it are stopped."""
        if self._sock is not None:
            self._poll.unregister(self._sock)
            self._sock.close()
            self._sock = None
        self._inbuf.clear()

    # --- operations ---------------------------------------------------------

    def ping(self) -> Ping:
        """The daemon's version, its protocol version and whether it has KVM."""
        return Ping.from_json(self._call({"op": "ping"}))

    def stats(self) -> Stats:
        """The daemon's counters."""
        return Stats.from_json(self._call({"op": "stats"}))

    def run(self, image: bytes, mode: str = "real", *, ring: int | None = None,
            memory_size: int | None = None, load_address: int | None = None,
            regs: Mapping[str, int] | None = None, segments: Mapping[str, int] | None = None,
            timeout_ms: int | None = None, regions: Iterable[tuple[int, bytes]] | None = None,
            log_ports: Iterable[int] | None = None,
            dump: Iterable[tuple[int, int]] | None = None) -> Result:
        """Runs the guest ``image`` in a fresh VM and returns how it ended.

        The arguments are those of :class:`RunRequest`, the fields of
        PROTOCOL.md's ``run``.  A request the daemon refuses raises the
        :class:`DaemonError` subclass of its code; a guest that faults or
        times out is a result, with ``exit.reason`` saying so."""
        return self.submit(RunRequest(image, mode, ring, memory_size, load_address, regs,
                                      segments, timeout_ms, regions, log_ports, dump))

    def submit(self, request: RunRequest) -> Result:
        """Carries out one :class:`RunRequest`, as :meth:`run` does."""
        return Result.from_json(self._call(request.to_json()))

    @overload
    def run_many(self, requests: Iterable[RunRequest], window: int = ...,
                 return_exceptions: Literal[False] = ...) -> Iterator[Result]: ...

    @overload
    def run_many(self, requests: Iterable[RunRequest], window: int = ..., *,
                 return_exceptions: Literal[True]) -> Iterator[Result | DaemonError]: ...

    def run_many(self, requests: Iterable[RunRequest], window: int = 32,
                 return_exceptions: bool = False) -> Iterator[Result | DaemonError]:
        """Runs many requests on the one connection, pipelined: up to
        ``window`` are sent ahead of their answers, and the results come in
        the order of ``requests`` (which may be a lazy iterable).

        A refused request raises its :class:`DaemonError` at its place, or,
        with ``return_exceptions``, is yielded as that exception and the
        others go on.  Leaving the loop before its end closes the
        connection, which stops the runs still outstanding.  The client
        serves nothing else until the loop ends (use a second client, or
        :class:`kvmrun.AsyncClient`, to mix calls)."""
        if window < 1:
            raise ValueError("window must be at least 1")
        return self._pipeline((r.to_json() for r in requests), window,
                              return_exceptions, Result.from_json)

    # --- the connection -----------------------------------------------------

    def _call(self, obj: dict[str, Any]) -> dict[str, Any]:
        answers = self._pipeline(iter([obj]), 1, False, _same)
        try:
            answer = next(answers)
        finally:
            answers.close()
        assert not isinstance(answer, DaemonError)
        return answer

    def _pipeline(self, objs: Iterator[dict[str, Any]], window: int,
                  return_exceptions: bool,
                  convert: Callable[[dict[str, Any]], T]) -> Generator[T | DaemonError, None, None]:
        """Sends ``objs`` with ids of this client's own, at most ``window``
        unanswered, and yields each answer converted, or its error, in order."""
        sock = self._connect()
        out = bytearray()
        pending: deque[int] = deque()  # ids sent and not answered, oldest first
        done = False
        try:
            while True:
                while not done and len(pending) < window:
                    obj = next(objs, None)
                    if obj is None:
                        done = True
                        break
                    self._last_id += 1
                    obj["id"] = self._last_id
                    out += encode(obj)
                    pending.append(self._last_id)
                if not pending:
                    return
                line = self._read_line(sock, out)
                try:
                    answer = decode(line, pending.popleft())
                except DaemonError as e:
                    closed = is_closing(e)
                    if closed:
                        self.close()  # the daemon closes it too
                    if not return_exceptions:
                        raise
                    yield e
                    if closed and (pending or not done):
                        raise Disconnected(f"kvmrund closed the connection: {e}") from e
                    continue
                yield convert(answer)
        except ProtocolError:
            self.close()
            raise
        finally:
            if pending or out:
                self.close()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            # Anything to read between requests is the daemon closing.
            self._poll.modify(self._sock, select.POLLIN)
            if not self._poll.poll(0):
                return self._sock
            self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise Disconnected(f"cannot connect to kvmrund at {self.path}: "
                               f"{e.strerror or e}") from e
        sock.setblocking(False)
        self._sock = sock
        self._poll.register(sock, select.POLLIN)
        return sock

    def _read_line(self, sock: socket.socket, out: bytearray) -> bytes:
        """The next answer line, sending what ``out`` holds meanwhile."""
        timeout_ms = None if self.timeout is None else int(self.timeout * 1000)
        while True:
            end = self._inbuf.find(b"\n")
            if end >= 0:
                line = bytes(self._inbuf[:end + 1])
                del self._inbuf[:end + 1]
                return line
            self._poll.modify(sock, select.POLLIN | (select.POLLOUT if out else 0))
            if not self._poll.poll(timeout_ms):
                self.close()
                raise Disconnected(f"no answer from kvmrund within {self.timeout} s")
            if out:
                try:
                    del out[:sock.send(out, socket.MSG_NOSIGNAL)]
                except BlockingIOError:
                    pass
                except OSError as e:
                    # The daemon closed; it may have said why: read on.
                    if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                        self.close()
                        raise Disconnected(f"kvmrund: {e.strerror or e}") from e
                    out.clear()
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError as e:
                data = b""
                if e.errno != errno.ECONNRESET:
                    self.close()
                    raise Disconnected(f"kvmrund: {e.strerror or e}") from e
            if not data:
                self.close()
                raise Disconnected("kvmrund closed the connection before answering")
            self._inbuf += data
