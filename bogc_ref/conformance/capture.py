"""What a candidate printed and warned, kept apart from the report.

Each worker process writes its standard output and error (file descriptors 1 and 2, so
C-level prints and prints at exit are included) to two files that only the harness reads.
After every call, and when a worker ends, :meth:`OutputLog.collect` reads what the files
gained and records it against what was running then (a case, a law, loading, exit). The
JSON report keeps the text (up to :data:`KEEP_BYTES` per stream) and one entry per event;
the console shows a one-line summary. Warnings raised during calls are counted by
category, message and place, never printed one by one.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

#: Bytes of each stream kept for the JSON report (the rest is counted).
KEEP_BYTES = 64 * 1024
#: Characters of one event's excerpt.
EXCERPT_CHARS = 2000
#: Events kept (the rest are counted).
MAX_EVENTS = 200


@dataclass
class _Stream:
    path: Path
    offset: int = 0


@dataclass
class OutputLog:
    """Captured output and warnings of one candidate across all its worker processes."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bogc-out-")))
    bytes: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    kept: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()}
    )
    events: list[dict[str, Any]] = field(default_factory=list)
    events_dropped: int = 0
    warnings: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _streams: dict[str, _Stream] = field(default_factory=dict)
    _files: int = 0

    def new_files(self) -> tuple[BinaryIO, BinaryIO]:
        """Open fresh stdout and stderr files for a new worker (the caller closes them)."""
        self._files += 1
        handles = []
        for stream in ("stdout", "stderr"):
            path = self.directory / f"worker{self._files}.{stream}"
            handles.append(path.open("wb"))
            self._streams[stream] = _Stream(path)
        return handles[0], handles[1]

    def collect(self, when: str) -> None:
        """Record what the current worker printed since the last collect, against ``when``."""
        event: dict[str, Any] = {}
        for name, stream in self._streams.items():
            try:
                size = stream.path.stat().st_size
            except OSError:
                continue
            if size <= stream.offset:
                continue
            with stream.path.open("rb") as handle:
                handle.seek(stream.offset)
                data = handle.read(min(size - stream.offset, KEEP_BYTES))
            self.bytes[name] += size - stream.offset
            stream.offset = size
            room = KEEP_BYTES - len(self.kept[name])
            self.kept[name] += data[: max(room, 0)]
            event[name] = data.decode("utf-8", "replace")[:EXCERPT_CHARS]
        if not event:
            return
        if len(self.events) < MAX_EVENTS:
            self.events.append({"when": when, **event})
        else:
            self.events_dropped += 1

    def tail(self, stream: str, lines: int = 3) -> str:
        """What the current worker last wrote to ``stream``, in one line (for a reason).

        A crash report of :mod:`faulthandler` is reduced to its first line and the two
        innermost frames; otherwise the last ``lines`` non-empty lines.
        """
        current = self._streams.get(stream)
        if current is None:
            return ""
        try:
            with current.path.open("rb") as handle:
                size = current.path.stat().st_size
                handle.seek(max(0, size - 4096))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        fatal = [i for i, line in enumerate(kept) if line.startswith("Fatal Python error")]
        if fatal:
            start = fatal[-1]
            frames = [line for line in kept[start:] if line.startswith("File ")]
            return " | ".join([kept[start], *frames[:2]])
        return " | ".join(kept[-lines:])

    def add_warnings(self, records: object) -> None:
        """Count warnings sent back by the worker (``category``, ``message``, ``where``)."""
        if not isinstance(records, list):
            return
        for r in records:
            if isinstance(r, dict):
                key = (str(r.get("category")), str(r.get("message")), str(r.get("where")))
                count = r.get("count", 1)
                self.warnings[key] += count if isinstance(count, int) and count > 0 else 1

    def summary(self) -> dict[str, Any]:
        """The JSON report's ``candidate_output``."""
        return {
            "stdout_bytes": self.bytes["stdout"],
            "stderr_bytes": self.bytes["stderr"],
            "stdout": self.kept["stdout"].decode("utf-8", "replace"),
            "stderr": self.kept["stderr"].decode("utf-8", "replace"),
            "events": self.events,
            "events_dropped": self.events_dropped,
            "warnings": [
                {"category": c, "message": m, "where": w, "count": n}
                for (c, m, w), n in self.warnings.most_common()
            ],
        }


def console_summary(summary: dict[str, Any]) -> list[str]:
    """At most two lines from :meth:`OutputLog.summary`: output volume and warnings."""
    lines = []
    out, err = summary.get("stdout_bytes", 0), summary.get("stderr_bytes", 0)
    if out or err:
        whens = list(dict.fromkeys(e["when"] for e in summary.get("events", ())))
        shown = ", ".join(whens[:3]) + (", ..." if len(whens) > 3 else "")
        lines.append(
            f"candidate output: {out} bytes on stdout, {err} bytes on stderr (during {shown}); "
            "captured apart, the text is in the JSON report"
        )
    warnings = summary.get("warnings", [])
    total = sum(w["count"] for w in warnings)
    if total:
        top = warnings[0]
        short = str(top["category"]).rpartition(".")[2]
        lines.append(
            f"candidate warnings: {total} ({len(warnings)} distinct; most frequent: "
            f"{top['count']} x {short} {str(top['message'])[:80]!r} at {top['where']})"
        )
    return lines
