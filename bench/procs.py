"""Long-lived benchmark child processes: a JSON-line protocol over stdin/stdout, and their memory from /proc.

The parent starts a child with ``Child.start``, sends commands with ``send`` and reads replies with ``recv``; the
child answers with ``reply`` (one line prefixed ``PREFIX``; anything else a library prints on stdout is skipped).
A child's stderr goes to a log file, so a chatty library can never fill a pipe and stall it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PREFIX = "@@bench "  # marks a protocol line on a child's stdout


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set (VmRSS), its peak (VmHWM), its private part (RssAnon: heap, not the memory-mapped index files,
    whose pages the kernel may drop at any time) and proportional set size (Pss, shared pages split among the
    processes mapping them) of process ``pid``, in MB; {} when the process is gone."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            names = {"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
            if key in names:
                out[names[key]] = round(int(value.split()[0]) / 1024, 1)
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss_mb"] = round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return {}
    return out


def reply(**fields: Any) -> None:
    """Child side: one protocol line to the parent."""
    sys.stdout.write(PREFIX + json.dumps(fields) + "\n")
    sys.stdout.flush()


class Inbox:
    """Child side: the parent's commands, one JSON object per line on stdin (a closed stdin reads as
    ``{"cmd": "stop"}``)."""

    def __init__(self) -> None:
        self._buffer = ""

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next command, waiting at most ``timeout`` seconds (None: until one comes); None when none came."""
        while True:
            line, sep, rest = self._buffer.partition("\n")
            if sep:
                self._buffer = rest
                if line.strip():
                    command: dict[str, Any] = json.loads(line)
                    return command
                continue
            ready, _, _ = select.select([0], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return {"cmd": "stop"}
            self._buffer += chunk.decode()


class ChildError(RuntimeError):
    """A child process died, timed out or reported an error."""


class Child:
    """A long-lived child process speaking the JSON-line protocol."""

    def __init__(self, proc: subprocess.Popen[str], name: str, log: Path) -> None:
        self.proc, self.name, self.log = proc, name, log
        self._buffer = ""

    @classmethod
    def start(cls, cmd: list[str], name: str, log: Path, *, cwd: Path, env: dict[str, str] | None = None) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                    cwd=cwd, env={**os.environ, **(env or {})}, bufsize=1)
        return cls(proc, name, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise ChildError(f"{self.name} exited ({self._tail()})") from None

    def recv(self, timeout: float, want: str | None = None) -> dict[str, Any]:
        """The child's next protocol message (its ``event`` must be ``want`` when given)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            line, sep, rest = self._buffer.partition("\n")
            if sep:
                self._buffer = rest
                if not line.startswith(PREFIX):
                    continue
                message: dict[str, Any] = json.loads(line[len(PREFIX):])
                if message.get("event") == "error" or (want and message.get("event") != want):
                    raise ChildError(f"{self.name}: expected {want!r}, got {message}")
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildError(f"{self.name}: no {want or 'reply'} within {timeout:.0f} s ({self._tail()})")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16).decode(errors="replace")
                if not chunk:
                    raise ChildError(f"{self.name} exited with {self.proc.wait()} ({self._tail()})")
                self._buffer += chunk

    def call(self, wait: float, want: str, **command: Any) -> dict[str, Any]:
        """Send ``command``; its reply, which must come within ``wait`` seconds with event ``want``."""
        self.send(**command)
        return self.recv(wait, want)

    def close(self, timeout: float = 30) -> None:
        """Ask the child to stop (closing its stdin), then end it if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(timeout=10)

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-5:]) or f"log {self.log} empty"
