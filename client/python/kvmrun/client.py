"""The blocking client: :class:`Client`."""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
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


TLS_PREFIX = "tls://"
"""The start of an address ``tls://HOST:PORT``: a front (HAProxy) terminating
mutual TLS in front of kvmrund's socket, rather than the socket itself."""


def tls_address(path: str) -> tuple[str, int] | None:
    """``(HOST, PORT)`` of a ``tls://HOST:PORT`` address (HOST maybe
    ``[IPv6]``), or ``None`` for a socket path."""
    if not path.startswith(TLS_PREFIX):
        return None
    host, sep, port = path[len(TLS_PREFIX):].rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{path}: not an address tls://HOST:PORT")
    return host, int(port)


def tls_context(ca: str | None = None, cert: str | None = None,
                key: str | None = None) -> ssl.SSLContext:
    """The TLS settings of a ``tls://`` connection: the server's certificate
    must chain to ``ca`` (default ``$KVMRUN_CA``, else the system's CAs) and
    name the host; ``cert`` and ``key`` (default ``$KVMRUN_CERT`` and
    ``$KVMRUN_KEY``, PEM files) are the client's certificate for the front."""
    ca = ca or os.environ.get("KVMRUN_CA") or None
    cert = cert or os.environ.get("KVMRUN_CERT") or None
    key = key or os.environ.get("KVMRUN_KEY") or None
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs its key and a key its "
                         "certificate: give both or neither")
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


class Client:
    """A connection to kvmrund, made on first use and made again after the
    daemon closed it.

    ``path`` is the daemon's socket (default ``$KVMRUN_SOCKET`` or
    ``/run/kvmrun/kvmrun.sock``), or ``tls://HOST:PORT`` for a front
    terminating TLS, with ``ca``, ``cert`` and ``key`` as :func:`tls_context`
    takes them; ``timeout``, in seconds, bounds each wait
    for the daemon (``None``: wait as long as it takes).  Not for use by
    several threads at once; use one client per thread, or
    :class:`kvmrun.AsyncClient`.  Use it as a context manager, or call
    :meth:`close`::

        with kvmrun.Client() as client:
            result = client.run(image, mode="long")
            print(result.console, result.exit.reason, hex(result.regs.rax))
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 timeout: float | None = None, *, ca: str | None = None,
                 cert: str | None = None, key: str | None = None) -> None:
        self.path = socket_path(path)
        self.timeout = timeout
        self._tls = tls_address(self.path)
        self._tls_context = tls_context(ca, cert, key) if self._tls else None
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
            regs: Mapping[str, int] | None = None,
            segments: Mapping[str, int | Mapping[str, int]] | None = None,
            timeout_ms: int | None = None, regions: Iterable[tuple[int, bytes]] | None = None,
            log_ports: Iterable[int] | None = None,
            dump: Iterable[tuple[int, int]] | None = None,
            xstate: Mapping[str, int] | None = None, msrs: Mapping[str, int] | None = None,
            cpuid: Iterable[Mapping[str, int]] | None = None,
            returns: Iterable[str] | None = None, max_instructions: int | None = None,
            trace: bool | None = None, changes: bool | None = None) -> Result:
        """Runs the guest ``image`` in a fresh VM and returns how it ended.

        The arguments are those of :class:`RunRequest`, the fields of
        PROTOCOL.md's ``run``.  A request the daemon refuses raises the
        :class:`DaemonError` subclass of its code; a guest that faults or
        times out is a result, with ``exit.reason`` saying so."""
        return self.submit(RunRequest(image, mode, ring, memory_size, load_address, regs,
                                      segments, timeout_ms, regions, log_ports, dump,
                                      xstate=xstate, msrs=msrs, cpuid=cpuid, returns=returns,
                                      max_instructions=max_instructions, trace=trace,
                                      changes=changes))

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
        try:
            sock = self._open_socket()
        except OSError as e:
            raise Disconnected(f"cannot connect to kvmrund at {self.path}: "
                               f"{e.strerror or e}") from e
        sock.setblocking(False)
        self._sock = sock
        self._poll.register(sock, select.POLLIN)
        return sock

    def _open_socket(self) -> socket.socket:
        """The daemon's socket, or a front's TLS connection, connected."""
        if self._tls is None or self._tls_context is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            return sock
        tcp = socket.create_connection(self._tls, self.timeout)
        try:
            # One request, one small segment: Nagle would hold pipelined lines back.
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._tls_context.wrap_socket(tcp, server_hostname=self._tls[0])
        except OSError:
            tcp.close()
            raise

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
                    # TLS takes no flags; Python ignores SIGPIPE anyway.
                    flags = 0 if self._tls else socket.MSG_NOSIGNAL
                    del out[:sock.send(out, flags)]
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except OSError as e:
                    # The daemon closed; it may have said why: read on.
                    if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                        self.close()
                        raise Disconnected(f"kvmrund: {e.strerror or e}") from e
                    out.clear()
            try:
                # A TLS record is read whole, so poll() misses no bytes held decrypted.
                data = sock.recv(1 << 20)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
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
