"""The replicas one KmsClient talks to: where they are, and which one takes the next request.

Addresses: `host:port` (a `[v6]:port`), several comma-separated or as a sequence. A host that is a DNS name is
resolved once, when the client is made, to all of its A and AAAA records: each address is a replica. Other gRPC
targets (`unix:...`, `dns:///...`) are used as they are, one replica each.

Each replica has its own gRPC channel and its own verified session (KmsClient verifies and pins every one:
evidence, domain, freshness against the one ClientState). The next request goes to the usable replica with the
fewest requests in flight, round-robin among equals. A replica whose evidence, domain or state was refused, or
whose enclave says it is not an approved replica, is not asked again for `recheck_s` seconds; one that could
not be reached is tried last during that time.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

_log = logging.getLogger("kms.client")

Resolver = Callable[..., list[tuple]]
Observer = Callable[[str, str, str], None]   # (event: up | down | refused | failover, address, detail)


def split_targets(target: str | Sequence[str]) -> list[str]:
    """The addresses a --server value or a sequence names, in order, without blanks or repeats."""
    parts = target.split(",") if isinstance(target, str) else list(target)
    out = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if not out:
        raise ValueError("no server address given")
    return out


def _host_port(address: str) -> tuple[str, str] | None:
    """(host, port) of a host:port address, or None for another kind of gRPC target."""
    if "/" in address or address.startswith("unix:"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host), port


def _join(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(address: str, resolver: Resolver = socket.getaddrinfo) -> list[str]:
    """The replicas one address names: itself for an IP literal or another kind of target, else one per A/AAAA
    record of the name (OSError, e.g. socket.gaierror, when it does not resolve)."""
    parsed = _host_port(address)
    if parsed is None:
        return [address]
    host, port = parsed
    try:
        return [_join(str(ipaddress.ip_address(host)), port)]
    except ValueError:
        pass
    records = resolver(host, int(port), type=socket.SOCK_STREAM)
    found = [_join(str(ipaddress.ip_address(sockaddr[0].split("%")[0])), port)
             for family, *_, sockaddr in records if family in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise OSError(f"{host} has no A or AAAA record")
    return list(dict.fromkeys(found))


def expand(target: str | Sequence[str], resolver: Resolver = socket.getaddrinfo) -> list[tuple[str, str | None]]:
    """Every replica a target names, as (address, the DNS name it came from or None)."""
    out: dict[str, str | None] = {}
    for address in split_targets(target):
        parsed = _host_port(address)
        records = resolve(address, resolver)
        named = parsed is not None and records != [address] and not _is_ip(parsed[0])
        for record in records:
            out.setdefault(record, parsed[0] if named and parsed is not None else None)
    return list(out.items())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass
class ReplicaState:
    """What the client knows of one replica (KmsClient.replicas())."""

    address: str
    up: bool = False
    refused: str = ""          # why its evidence, domain, state or approval was refused ("" when it was not)
    down: str = ""             # why it could not be reached last time ("" when it could)
    since: float = 0.0         # when `refused` or `down` was set (monotonic)
    inflight: int = 0
    served: int = 0            # requests it answered

    def as_dict(self) -> dict[str, object]:
        return {"server": self.address, "up": self.up, "refused": self.refused or None, "down": self.down or None,
                "served": self.served}


@dataclass
class Chooser:
    """Which replica takes the next attempt; thread-safe."""

    states: list[ReplicaState]
    recheck_s: float = 5.0
    observer: Observer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def pick(self, tried: set[int]) -> int | None:
        """The index of the replica for the next attempt, or None when every one was tried or refused."""
        if len(self.states) == 1:   # one address: always that one (it re-verifies on every reconnect)
            return None if tried else 0
        now = time.monotonic()
        with self._lock:
            start = next(self._turn)
            order = [(start + i) % len(self.states) for i in range(len(self.states))]
            fresh = [i for i in order if i not in tried and not self._resting(self.states[i], now)]
            if fresh:
                return min(fresh, key=lambda i: self.states[i].inflight)   # min keeps the round-robin order
            down = [i for i in order if i not in tried and not self.states[i].refused]   # resting: may be back
            return down[0] if down else None

    def _resting(self, state: ReplicaState, now: float) -> bool:
        return bool(state.refused or state.down) and now - state.since < self.recheck_s

    def resting_refused(self, index: int) -> bool:
        state = self.states[index]
        with self._lock:
            return bool(state.refused) and time.monotonic() - state.since < self.recheck_s

    def all_refused(self) -> list[str]:
        """'address: why' of each replica refused within recheck_s, when every one is (else [])."""
        now = time.monotonic()
        with self._lock:
            if all(s.refused and now - s.since < self.recheck_s for s in self.states):
                return [f"{s.address}: {s.refused}" for s in self.states]
        return []

    @contextmanager
    def busy(self, index: int) -> Iterator[None]:
        with self._lock:
            self.states[index].inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self.states[index].inflight -= 1

    def mark(self, index: int, event: str, detail: str = "", *, served: bool = True) -> None:
        """Record an attempt's outcome: up (answered), down (unreachable) or refused (never use it for now)."""
        state = self.states[index]
        with self._lock:
            changed = not state.up if event == "up" else (state.up or (state.refused if event == "refused"
                                                                       else state.down) != detail)
            state.up = event == "up"
            if event == "up":
                state.refused = state.down = ""
                state.served += served
            elif event == "refused":
                state.refused, state.down, state.since = detail, "", time.monotonic()
            else:
                state.down, state.since = detail, time.monotonic()
        if changed:
            log = _log.error if event == "refused" else _log.warning if event == "down" else _log.info
            log("kms client: replica %s %s%s", state.address, event, f": {detail}" if detail else "")
        if (changed or event != "up") and self.observer is not None:
            self.observer(event, state.address, detail)

    def failed_over(self, index: int) -> None:
        if self.observer is not None:
            self.observer("failover", self.states[index].address, "")
