"""A background writer that commits execution records and logs in batches, with a journal.

A warm replica answers in about a millisecond; one SQL commit per call would double that. Calls
hand their events to this writer and return; a thread hands what is queued to its sink at most
``interval_s`` after the first event of a batch, in order: one SQL transaction, here or in the
control plane, for a pod (see ``Sink``). ``flush()`` waits until everything queued before it is
committed.

So that a replica that dies (a user's ``os._exit``, the OOM killer) loses nothing, each event is
first appended to the replica's journal (one ``os.write``, which outlives the process). Events
carry a sequence number; after each commit the last committed number is written beside the
journal, and the journal moves to a new file once it grows past ``JOURNAL_ROTATE_BYTES`` (an old
file is removed once all its events are committed). Journal files are held under an exclusive
``flock``, released by the kernel when the process dies: the next replica of the deployment on
that node (and ``rayline up``, and the control plane for its own node) replays the files nobody
holds, skipping what was committed.

A journal is a file of its node: it does not survive the node. Where that matters (a pod on
another node than the control plane's), the caller waits for ``committed()`` before it answers:
the writer then commits at once what is queued, so calls that end while a commit is on its way
share the next one (a group commit).

No SQL here: a pod, which has no database, writes through the control plane, and does not pay
for SQLAlchemy's import when it starts (a quarter of a second of a wake from standby). SQL is
``rayline.store.record_sql``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from rayline.domain.statuses import ExecutionStatus
from rayline.errors import RaylineError

logger = logging.getLogger(__name__)

Event = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


# Where committed events go: ``sink(events, replaying)``. In the control plane, SQL itself
# (``sql_sink``); in a warm pod, the control plane (``rayline.services.pod_gateway``), since pods
# run user code and hold no database credentials.
Sink = Callable[[list[Event], bool], None]
JOURNAL_ROTATE_BYTES = 4 * 1024 * 1024
RETRY_PAUSE_S = (0.1, 0.5, 2.0)


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# One encoder for every journal line: json.dumps with options builds a new one at each call.
_JOURNAL_LINE = json.JSONEncoder(default=_encode, separators=(",", ":"))


def journal_line(event: Event) -> bytes:
    """An event as one line of JSON. orjson writes a warm pod's two lines per execution in a tenth
    of the time (about 1 us each, against 13: profiled); json is the fallback for what orjson
    refuses (an integer beyond 64 bits, a key that is not a string). Both write dates as
    ``isoformat`` does."""
    try:
        return orjson.dumps(event, default=_encode, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError is one
        return (_JOURNAL_LINE.encode(event) + "\n").encode()


class Journal:
    """Append-only event files of one writer (``<name>.<generation>.journal``), exclusively
    locked while it lives, and ``<name>.done``, the sequence number of its last committed event."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._base = path.with_suffix("")
        # The first journal file is locked before ``.done`` exists: a replay that finds ``.done``
        # free still sees, from the journal's lock, that its writer lives (replay_orphans).
        self.generation, self._size, self._fd = 0, 0, self._open(0)
        self._done_fd = os.open(self._base.with_suffix(".done"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._done_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.files: dict[int, int] = {0: self._fd}  # generation -> fd, until fully committed
        # Held around "append then enqueue" and while rotating, so order is the same in both.
        self.lock = threading.Lock()

    def _open(self, generation: int) -> int:
        fd = os.open(f"{self._base}.{generation}.journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def append(self, event: Event) -> int:
        """Write one event (the caller holds ``lock``); returns the generation it went to."""
        line = journal_line(event)
        if self._size + len(line) > JOURNAL_ROTATE_BYTES and self._size:
            self.generation += 1
            self._fd, self._size = self._open(self.generation), 0
            self.files[self.generation] = self._fd
        os.write(self._fd, line)
        self._size += len(line)
        return self.generation

    def committed(self, seq: int, generation: int) -> None:
        """Everything up to ``seq`` (in ``generation`` and before) is in SQL."""
        os.pwrite(self._done_fd, f"{seq:020d}".encode(), 0)
        with self.lock:  # an append may open the next file meanwhile (a rotation)
            done = {g: self.files.pop(g) for g in [g for g in self.files if g < generation]}
        for old, fd in done.items():
            os.close(fd)
            Path(f"{self._base}.{old}.journal").unlink(missing_ok=True)

    def close(self, remove: bool) -> None:
        for generation, fd in self.files.items():
            if remove:
                Path(f"{self._base}.{generation}.journal").unlink(missing_ok=True)
            os.close(fd)
        if remove:
            self._base.with_suffix(".done").unlink(missing_ok=True)
        os.close(self._done_fd)


def _held_by_a_live_writer(paths: list[Path]) -> bool:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def replay_orphans(sink: Sink, folder: Path) -> list[str]:
    """Apply the uncommitted events of every writer in ``folder`` that is gone; returns their names
    (the pod ids of the replicas that died). Several may replay one folder at once (a pod that
    starts, the control plane's sweep): each writer's files are replayed by one of them."""
    dead = []
    for done_path in sorted(folder.glob("*.done")) if folder.exists() else []:
        try:
            fd = os.open(done_path, os.O_RDONLY)
        except FileNotFoundError:  # replayed by another meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it, or another replay
            files = sorted(folder.glob(f"{done_path.stem}.*.journal"), key=lambda p: int(p.suffixes[-2][1:]))
            if os.fstat(fd).st_nlink == 0 or _held_by_a_live_writer(files):
                continue  # replayed (and removed) by another, or a writer still starting
            done = int(os.pread(fd, 64, 0) or 0)
            events = []
            for path in files:
                try:
                    # Bytes, split at newlines only: a line's JSON may hold U+2028 and the like
                    # (orjson writes UTF-8), which str.splitlines() would split at too.
                    lines = path.read_bytes().split(b"\n")
                except FileNotFoundError:
                    continue
                for line in lines:
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:  # a line cut short by the crash (UnicodeDecodeError is one)
                        continue
                    if event.get("seq", 0) > done:
                        events.append(event)
            if events:
                try:
                    sink(events, True)
                except Exception:  # one by one, so that a record refused (its execution deleted,
                    for event in events:  # say) cannot keep the others, or a new pod, from starting
                        try:
                            sink([event], True)
                        except Exception:
                            logger.exception("dropping a journaled record that cannot be written: %r", event)
            for path in files:
                path.unlink(missing_ok=True)
            done_path.unlink(missing_ok=True)
            dead.append(done_path.stem)
        finally:
            os.close(fd)
    return dead


def replay_tree(sink: Sink, root: Path) -> list[str]:
    """``replay_orphans`` for every folder of journals under ``root`` (one per deployment)."""
    folders = {path.parent for path in root.rglob("*.done")} if root.exists() else set()
    return [name for folder in sorted(folders) for name in replay_orphans(sink, folder)]


class RecordWriter:
    def __init__(
        self, sink: Sink, journal_path: Path | None = None, interval_s: float = 0.05, max_batch: int = 2000
    ) -> None:
        self._sink = sink
        self._journal = Journal(journal_path) if journal_path else None
        self._seq = 0
        # What is recorded, for the writer's thread. The thread is woken by the first item of a
        # batch only (and at once by a commit waited for), never by each event: waking a thread
        # per event costs the recording process more than the event itself.
        self._pending: deque[Event | Future | None] = deque()
        self._wake = threading.Event()  # something is pending
        self._urgent = threading.Event()  # a commit is waited for (set again by each new one)
        self._waited_for = 0  # commits waited for and not yet taken by the writer (markers, the end)
        self._counting = threading.Lock()
        self._interval_s, self._max_batch = interval_s, max_batch
        self._closed = False
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rayline-record-writer", daemon=True)
        self._thread.start()

    def _put(self, event: Event) -> None:
        if self._closed:  # e.g. the last lines of an execution its pod abandoned when it stopped
            logger.debug("record writer closed: dropped a %s event", event.get("kind"))
            return
        if self._journal is None:
            self._enqueue(event)
            return
        with self._journal.lock:
            if self._closed:  # closed meanwhile (close() sets it under this lock): its files are gone
                return
            self._seq += 1
            event["seq"] = self._seq
            event["generation"] = self._journal.append(event)
            self._enqueue(event)

    def _enqueue(self, item: Event | Future | None, urgent: bool = False) -> None:
        if urgent:
            with self._counting:
                self._waited_for += 1
        self._pending.append(item)
        if urgent:
            self._urgent.set()
        if not self._wake.is_set():  # the writer clears it before it takes what is pending
            self._wake.set()

    # --- what callers record -------------------------------------------------------------------

    def execution_started(
        self,
        execution_id: str,
        pipeline_name: str,
        deployment_name: str,
        inputs: list[dict[str, Any]],
        started_at: datetime,
        pod_id: str | None = None,
    ) -> None:
        self._put(
            {
                "kind": "started",
                "row": {
                    "execution_id": execution_id,
                    "pipeline_name": pipeline_name,
                    "deployment_name": deployment_name,
                    "pod_id": pod_id,
                    "status": ExecutionStatus.RUNNING,
                    "inputs": inputs,
                    "outputs": [],
                    "created_at": started_at,
                    "start_date": started_at,
                },
            }
        )

    def execution_finished(
        self, execution_id: str, status: str, outputs: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        values: dict[str, Any] = {"status": status, "end_date": utcnow(), "error": error}
        if outputs is not None:
            values["outputs"] = outputs
        self._put({"kind": "finished", "execution_id": execution_id, "values": values})

    def execution_log(self, execution_id: str, stream: str, message: str) -> None:
        self._put(
            {
                "kind": "execution_log",
                "row": {"execution_id": execution_id, "timestamp": utcnow(), "stream": stream, "message": message},
            }
        )

    def deployment_log(
        self, deployment_name: str, message: str, stream: str = "stdout", pod_id: str | None = None
    ) -> None:
        self._put(
            {
                "kind": "deployment_log",
                "row": {
                    "deployment_name": deployment_name,
                    "timestamp": utcnow(),
                    "stream": stream,
                    "message": message,
                    "pod_id": pod_id,
                    "type": "deployment",
                },
            }
        )

    def files(self, execution_id: str, direction: str, files: dict[str, Any]) -> None:
        """Input or output files of an execution: not journaled (too big for a journal line)."""
        self._enqueue({"kind": "files", "execution_id": execution_id, "direction": direction, "files": files})

    # --- committing ----------------------------------------------------------------------------

    def committed(self) -> Future:
        """Done once everything recorded before this call is committed (by the sink); failed
        with the error should the writer fail to commit it."""
        done: Future = Future()
        with self._closing:  # never queued after close() has queued its end
            if self._closed:
                done.set_result(None)
            else:
                self._enqueue(done, urgent=True)
        return done

    def flush(self, timeout_s: float = 10.0) -> bool:
        try:
            self.committed().result(timeout_s)
            return True
        except TimeoutError:
            return False

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued and stop; what is recorded afterwards is dropped."""
        committed = self.flush(timeout_s)
        with self._closing:
            if self._journal is not None:
                with self._journal.lock:  # no event between the last flush and the journal's close
                    self._closed = True
            else:
                self._closed = True
            self._enqueue(None, urgent=True)
        self._thread.join(timeout_s)
        if self._journal is not None:
            self._journal.close(remove=committed)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            self._wake.wait()
            self._wake.clear()
            # A batch is what is recorded within interval_s of its first event, unless a commit is
            # waited for (then at once). A flag left set by a commit already taken is no reason to
            # cut a batch short: that could part an execution's start from its end.
            deadline = time.monotonic() + self._interval_s
            while not self._waited_for and (remaining := deadline - time.monotonic()) > 0:
                self._urgent.wait(remaining)
                self._urgent.clear()
            items: list[Event | Future | None] = []
            while self._pending:
                items.append(self._pending.popleft())
            taken = sum(1 for item in items if item is None or isinstance(item, Future))
            with self._counting:
                self._waited_for -= taken
            batch = [item for item in items if isinstance(item, dict)]
            markers = [item for item in items if isinstance(item, Future)]
            stopping = None in items
            try:
                for start in range(0, len(batch), self._max_batch):
                    chunk = batch[start : start + self._max_batch]
                    self._commit(chunk)
                    self._note_committed(chunk)
            except BaseException as error:  # a bug: what waits is told, and the writer goes on
                logger.exception("record batch could not be committed")
                for marker in markers:
                    marker.set_exception(error)
                continue
            for marker in markers:
                marker.set_result(None)

    def _note_committed(self, batch: list[Event]) -> None:
        events = [item for item in batch if "seq" in item]
        if events and self._journal is not None:
            try:
                self._journal.committed(events[-1]["seq"], events[-1]["generation"])
            except OSError:  # e.g. a full disk: the records are committed, a replay skips them
                logger.exception("could not note a commit in the journal")

    def _commit(self, batch: list[Event]) -> None:
        """Commit the batch; retried, then event by event, so that one bad event (a log line of
        an execution deleted meanwhile) cannot take the others with it. A batch its sink refuses
        (a RaylineError: the control plane judged a record, and a pod's sink already retries what
        did not reach it) goes event by event at once: retrying it would only stall the writer."""
        if not batch:
            return
        for pause in RETRY_PAUSE_S:
            try:
                self._sink(batch, False)
                return
            except RaylineError:
                logger.warning("a record of the batch was refused; writing its records one by one", exc_info=True)
                break
            except Exception:
                logger.exception("record batch failed; retrying in %s s", pause)
                time.sleep(pause)
        for item in batch:
            try:
                self._sink([item], False)
            except Exception:
                logger.exception("dropping a record that cannot be written: %r", item)
