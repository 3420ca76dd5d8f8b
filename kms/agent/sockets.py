"""Unix sockets whose peers are checked: created with their final mode, and every connection's uid (SO_PEERCRED)
checked against an allow-list before a byte of it is read.

gRPC's Python server cannot tell its handlers a unix peer's uid, so the agent's gRPC socket is a gate: it accepts,
checks the uid, and splices the connection's bytes to the gRPC server listening on a socket in a private (0700)
directory of the agent's own. Only the agent's own uid can reach that one directly, and that uid can read the
agent's memory anyway.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from kms.agent import metrics
from kms.log import get_logger

_log = get_logger("kms.agent")
SOCKET_MODES = (0o600, 0o660)
_CHUNK = 256 * 1024


class SocketError(Exception):
    """A socket cannot be created where the settings say (the message says why)."""


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a connected unix socket (the kernel's word, SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


def _clear_stale(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketError(f"{path} exists and is not a socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)   # left by a process that is gone
        return
    finally:
        probe.close()
    raise SocketError(f"{path}: another process is listening on it")


def bind_unix(path: Path, mode: int) -> socket.socket:
    """A listening unix socket at `path` with exactly `mode`: bound in a private directory next to it, chmod-ed,
    then renamed into place, so it never exists at `path` with a wider mode."""
    if mode not in SOCKET_MODES:
        raise SocketError(f"socket mode {mode:o}: only 600 or 660")
    path = path.absolute()
    _clear_stale(path)
    try:
        private = Path(tempfile.mkdtemp(prefix=".kms-agent-", dir=path.parent))
    except OSError as exc:
        raise SocketError(f"cannot create a socket in {path.parent}: {exc.strerror or exc}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = private / "s"
        sock.bind(str(staged))
        os.chmod(staged, mode)
        os.rename(staged, path)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise SocketError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return sock


class CheckedListener:
    """Accepts on a unix socket; a peer whose uid is not allowed is closed at once (logged, counted); every other
    connection is handed to `handler` on a thread of its own."""

    def __init__(self, name: str, path: Path, mode: int, allowed_uids: Collection[int],
                 handler: Callable[[socket.socket], None]) -> None:
        self.name, self.path = name, path.absolute()
        self._allowed = frozenset(allowed_uids)
        self._handler = handler
        self._sock = bind_unix(self.path, mode)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name=f"kms-agent-{name}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return   # closed
            try:
                uid = peer_uid(conn)
            except OSError:
                conn.close()
                continue
            if uid not in self._allowed:
                metrics.PEERS_REFUSED.labels(socket=self.name).inc()
                _log.warning("connection refused: peer uid not allowed", socket=self.name, uid=uid)
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name=f"kms-agent-{self.name}-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._handler(conn)
            except OSError as exc:
                _log.debug("connection ended", socket=self.name, reason=str(exc))
            except Exception as exc:   # a defect: end this connection, keep serving the others
                _log.error("connection handler failed", socket=self.name, error=type(exc).__name__)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def splice_to(target: str) -> Callable[[socket.socket], None]:
    """A handler that relays a connection, both ways, to the unix socket at `target` until either side ends."""

    def handler(conn: socket.socket) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            upstream.connect(target)
            back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            back.start()
            _pump(conn, upstream)
            back.join()

    return handler
