"""The asyncio client: :class:`AsyncClient`."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Literal, overload

from .client import socket_path, tls_address, tls_context
from .errors import DaemonError, Disconnected, ProtocolError
from .types import Ping, Result, RunRequest, Stats, decode, encode, is_closing

class _AnswersFirst(asyncio.StreamReaderProtocol):
    """Streams whose reader gets what the daemon said before it hung up.

    A daemon may answer and close at once (forbidden, busy, a line too
    long); a request written after that fails with EPIPE or ECONNRESET, and
    asyncio then drops the connection with that error, unread answer and
    all.  Here the answer still in SOCK (the Unix socket; None over TLS,
    whose records only the transport can read) is read first, then the end
    is an end of file."""

    def __init__(self, reader: asyncio.StreamReader, sock: socket.socket | None) -> None:
        super().__init__(reader)
        self._sock = sock

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            exc = None
            try:
                while self._sock is not None and (data := self._sock.recv(1 << 16)):
                    self.data_received(data)
            except OSError:
                pass  # nothing more to read: the end, as said
        super().connection_lost(exc)


class _Connection:
    """One connection: requests in flight, written in order by a writer task
    and answered in order by a reader task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.stream_in = reader
        self.stream_out = writer
        self.pending: deque[tuple[int, asyncio.Future[bytes]]] = deque()
        self.out = bytearray()
        self.wake = asyncio.Event()
        self.closed = False
        self.writer = loop.create_task(self._write())
        self.reader = loop.create_task(self._read())

    def send(self, id: int, line: bytes) -> asyncio.Future[bytes]:
        """Queues a request line; the future of its answer line."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(Disconnected("the connection is closed"))
            return future
        self.pending.append((id, future))
        self.out += line
        self.wake.set()
        return future

    async def _write(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.out:
                    self.stream_out.write(bytes(self.out))
                    self.out.clear()
                    await self.stream_out.drain()
        except OSError:
            pass  # the daemon closed: the reader reads what it said, then sees the end

    async def _read(self) -> None:
        why = "kvmrund closed the connection before answering"
        buf = bytearray()
        try:
            while True:
                try:
                    data = await self.stream_in.read(1 << 20)
                except ConnectionResetError:
                    data = b""
                if not data:
                    break
                scan = len(buf)
                buf += data
                while (end := buf.find(b"\n", scan)) >= 0:
                    line = bytes(buf[:end + 1])
                    del buf[:end + 1]
                    scan = 0
                    if not self.pending:
                        raise ProtocolError(f"an answer came for no request: {line[:200]!r}")
                    _, future = self.pending.popleft()
                    if not future.done():
                        future.set_result(line)
        except (OSError, ProtocolError) as e:
            why = f"kvmrund: {e}"
        finally:
            self.abort(why)
            self.stream_out.close()

    def abort(self, why: str) -> None:
        """Ends the connection; requests still waiting raise :class:`Disconnected`."""
        if self.closed:
            return
        self.closed = True
        while self.pending:
            _, future = self.pending.popleft()
            if not future.done():
                future.set_exception(Disconnected(why))
        self.writer.cancel()
        self.stream_out.close()  # the reader sees the end


_Sent = tuple[_Connection, int, "asyncio.Future[bytes]"]


class AsyncClient:
    """The asyncio counterpart of :class:`kvmrun.Client`: the same
    operations, as coroutines.  Calls made at the same time from several
    tasks are pipelined on the one connection, made on first use and made
    again after the daemon closed it::

        async with kvmrun.AsyncClient() as client:
            results = await asyncio.gather(*(client.run(image) for image in images))
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 ca: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.path = socket_path(path)
        self._tls = tls_address(self.path)
        self._tls_context = tls_context(ca, cert, key) if self._tls else None
        self._conn: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._last_id = 0

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection; runs still going on it are stopped."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort("the client was closed")
            await asyncio.gather(conn.reader, conn.writer, return_exceptions=True)

    async def ping(self) -> Ping:
        """The daemon's version, its protocol version and whether it has KVM."""
        return Ping.from_json(await self._answer(await self._send({"op": "ping"})))

    async def stats(self) -> Stats:
        """The daemon's counters."""
        return Stats.from_json(await self._answer(await self._send({"op": "stats"})))

    async def run(self, image: bytes, mode: str = "real", *, ring: int | None = None,
                  memory_size: int | None = None, load_address: int | None = None,
                  regs: Mapping[str, int] | None = None,
                  segments: Mapping[str, int | Mapping[str, int]] | None = None,
                  timeout_ms: int | None = None,
                  regions: Iterable[tuple[int, bytes]] | None = None,
                  log_ports: Iterable[int] | None = None,
                  dump: Iterable[tuple[int, int]] | None = None,
                  xstate: Mapping[str, int] | None = None,
                  msrs: Mapping[str, int] | None = None,
                  cpuid: Iterable[Mapping[str, int]] | None = None,
                  returns: Iterable[str] | None = None,
                  max_instructions: int | None = None, trace: bool | None = None,
                  changes: bool | None = None) -> Result:
        """Runs the guest ``image`` in a fresh VM; as :meth:`kvmrun.Client.run`."""
        return await self.submit(RunRequest(image, mode, ring, memory_size, load_address,
                                            regs, segments, timeout_ms, regions, log_ports,
                                            dump, xstate=xstate, msrs=msrs, cpuid=cpuid,
                                            returns=returns,
                                            max_instructions=max_instructions,
                                            trace=trace, changes=changes))

    async def submit(self, request: RunRequest) -> Result:
        """Carries out one :class:`RunRequest`, as :meth:`run` does."""
        return Result.from_json(await self._answer(await self._send(request.to_json())))

    @overload
    def run_many(self, requests: Iterable[RunRequest], window: int = ...,
                 return_exceptions: Literal[False] = ...) -> AsyncIterator[Result]: ...

    @overload
    def run_many(self, requests: Iterable[RunRequest], window: int = ..., *,
                 return_exceptions: Literal[True]) -> AsyncIterator[Result | DaemonError]: ...

    def run_many(self, requests: Iterable[RunRequest], window: int = 32,
                 return_exceptions: bool = False) -> AsyncIterator[Result | DaemonError]:
        """Runs many requests pipelined, at most ``window`` unanswered, and
        yields the results in the order of ``requests``; as
        :meth:`kvmrun.Client.run_many`, but leaving the loop early leaves the
        outstanding runs to finish, their answers dropped."""
        if window < 1:
            raise ValueError("window must be at least 1")
        return self._run_many(requests, window, return_exceptions)

    async def _run_many(self, requests: Iterable[RunRequest], window: int,
                        return_exceptions: bool) -> AsyncIterator[Result | DaemonError]:
        sent: deque[_Sent] = deque()
        try:
            it = iter(requests)
            while True:
                while len(sent) < window:
                    request = next(it, None)
                    if request is None:
                        break
                    sent.append(await self._send(request.to_json()))
                if not sent:
                    return
                try:
                    yield Result.from_json(await self._answer(sent.popleft()))
                except DaemonError as e:
                    if not return_exceptions:
                        raise
                    yield e
        finally:
            for _, _, future in sent:
                future.cancel()

    async def _send(self, obj: dict[str, Any]) -> _Sent:
        """Sends one request: what :meth:`_answer` waits on for its answer."""
        async with self._connecting:
            conn = self._conn
            if conn is None or conn.closed:
                try:
                    conn = self._conn = _Connection(*await self._open())
                except OSError as e:
                    raise Disconnected(f"cannot connect to kvmrund at {self.path}: "
                                       f"{e.strerror or e}") from e
        self._last_id += 1
        obj["id"] = self._last_id
        return conn, self._last_id, conn.send(self._last_id, encode(obj))

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Streams on the daemon's socket, or on a front's TLS connection."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        if self._tls is None or self._tls_context is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, self.path)
            except BaseException:
                sock.close()
                raise
            protocol = _AnswersFirst(reader, sock)
            transport, _ = await loop.create_unix_connection(lambda: protocol, sock=sock)
        else:
            protocol = _AnswersFirst(reader, None)
            transport, _ = await loop.create_connection(
                lambda: protocol, *self._tls, ssl=self._tls_context,
                server_hostname=self._tls[0])
            # One request, one small segment: Nagle would hold pipelined lines back.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    @staticmethod
    async def _answer(sent: _Sent) -> dict[str, Any]:
        conn, id, future = sent
        line = await future
        try:
            return decode(line, id)
        except DaemonError as e:
            if is_closing(e):
                conn.abort(f"kvmrund closed the connection: {e}")
            raise
        except ProtocolError:
            conn.abort("the answers can no longer be matched to the requests")
            raise
