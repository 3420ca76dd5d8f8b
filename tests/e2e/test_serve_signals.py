"""A real `kms serve` process: the human banner on stdout and the JSON log on stderr (two streams, nothing mixed),
and Ctrl-C twice: the first starts the drain (health NOT_SERVING for shutdown_delay_s), the second during the
drain stops at once, exit 130, with one line that says what was cut short and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e.server import LOOPBACK_FLAGS, REPO

DRAIN_S = 120  # far longer than the test waits after the second signal: only the second signal can end it


class _Lines:
    """A stream's lines as they come, with an event set when one matches."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<eof>")
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(text in line for line in self.lines) or "<eof>" in self.lines,
                                       timeout) and any(text in line for line in self.lines)

    def join(self) -> list[str]:
        self._thread.join(30)
        return [line for line in self.lines if line != "<eof>"]


def test_second_ctrl_c_stops_at_once_and_streams_are_separate(build: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kms", "serve", f"--data-dir={tmp_path / 'data'}", *LOOPBACK_FLAGS,
         f"--shutdown-delay-s={DRAIN_S}"], cwd=REPO, env=env, text=True, errors="replace",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        assert err.wait_for('"event": "serving"', 120), "\n".join(err.lines[-30:])
        assert out.wait_for("serving the gRPC API on", 30), "no banner on stdout"
        proc.send_signal(signal.SIGINT)
        assert err.wait_for("draining", 30), "\n".join(err.lines[-10:])
        assert proc.poll() is None  # the first Ctrl-C drains: still running
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)  # well inside the 120 s drain: the second signal ended it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stdout, stderr = out.join(), err.join()
    assert code == 130, (code, stdout, stderr)
    for line in stderr:  # the log stream: JSON lines only, never a traceback or the banner
        assert isinstance(json.loads(line), dict), line
    events = [json.loads(line)["event"] for line in stderr]
    assert "second shutdown request: stopping without draining" in events
    assert any(e == "stopped" for e in events)
    assert not any(line.startswith("{") for line in stdout)  # the banner stream holds no log line
    assert "Traceback" not in "\n".join(stdout + stderr)
    assert stdout[-1].startswith("kms serve: stopped at once on the second signal")
