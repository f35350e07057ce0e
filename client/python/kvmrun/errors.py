"""The exceptions of the kvmrun client.

A request the daemon refuses raises a :class:`DaemonError`, of the subclass
for its ``code`` (:class:`BadRequest`, :class:`TooLarge`, ...); a code this
package does not know raises a plain :class:`DaemonError` that keeps it.  A
connection that fails raises :class:`Disconnected`, an answer that makes no
sense :class:`ProtocolError`.
"""

from __future__ import annotations

from typing import Any


class KvmrunError(Exception):
    """Base class of everything this package raises about a request."""


class DaemonError(KvmrunError):
    """The daemon answered with ``"ok": false``.

    ``code`` is the protocol's error code (stable, for programs), ``message``
    the daemon's explanation (for people), ``id`` the id the answer carried
    (``None`` for the single line sent before closing a connection, as for
    ``forbidden`` and a ``busy`` past ``--max-connections``).
    """

    code: str = ""
    """The protocol error code this class stands for."""

    def __init__(self, code: str, message: str, id: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.id = id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BadRequest(DaemonError):
    """``bad_request``: the request is wrong; fix it rather than retry."""

    code = "bad_request"


class TooLarge(DaemonError):
    """``too_large``: a size past a limit the daemon is configured with."""

    code = "too_large"


class Busy(DaemonError):
    """``busy``: no room now (queue, memory, connections, shutting down); retry later."""

    code = "busy"


class Unsupported(DaemonError):
    """``unsupported``: the host's KVM cannot do what was asked."""

    code = "unsupported"


class Forbidden(DaemonError):
    """``forbidden``: this user may not use the daemon (``--allow-uid``, ``--allow-group``)."""

    code = "forbidden"


class Internal(DaemonError):
    """``internal``: KVM refused something it should not have; the message names the ioctl."""

    code = "internal"


class Unavailable(DaemonError):
    """``unavailable``: the daemon has no usable ``/dev/kvm`` now; retry once the host has KVM."""

    code = "unavailable"


ERRORS: dict[str, type[DaemonError]] = {
    cls.code: cls
    for cls in (BadRequest, TooLarge, Busy, Unsupported, Forbidden, Internal, Unavailable)
}
"""The exception class of each error code of protocol 3."""


def error_for(code: str, message: str, id: Any = None) -> DaemonError:
    """The exception for an error answer: its code's class, or :class:`DaemonError`."""
    return ERRORS.get(code, DaemonError)(code, message, id)


class Disconnected(KvmrunError, ConnectionError):
    """The connection to the daemon could not be made, broke, or closed before
    every answer came; the requests without an answer may or may not have run."""


class ProtocolError(KvmrunError):
    """An answer this client cannot read: not a JSON object, an id that is not
    the request's, a field missing or of the wrong type.  The connection is
    closed, since the answers can no longer be matched to the requests."""
