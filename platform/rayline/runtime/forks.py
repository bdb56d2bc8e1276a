"""A fork server: one clean template process per elastic worker, one forked child per execution.

Starting a Python process that imports Ray costs most of a core for about 0.7 s; forking one
that is already started costs a few milliseconds. A Ray worker of an elastic runtime
environment (``rayline.runtime.elastic_task``) starts, on its first execution, a template: a
plain Python process with the worker's interpreter, ``sys.path``, environment and working
directory, which imports Rayline's execution code (``rayline.runtime.worker``) and nothing
else, never runs user code, and stays single-threaded (``fork`` is only safe from such a
process). Each execution is a child forked from it: a process that never ran anything else,
with nothing of any other execution in its memory, modules or environment.

The child is a session leader (its process group is its own and that of whatever it starts),
dies with the template (``PR_SET_PDEATHSIG``), and the template dies with its worker (end of
file on its control socket). When a child ends, or is told to stop, its whole process group is
killed, so nothing it started outlives it.

Wire: the worker and the template talk over a ``SOCK_SEQPACKET`` socket pair (one message per
send, file descriptors passed with it): ``fork`` is answered by a child's pid with the worker's
end of the child's channel, then by the child's ``exit`` status; ``kill`` stops the child's
process group. The worker and the child talk over their channel with length-prefixed pickles
(``send`` / ``receive``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

_LENGTH = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1


class TemplateGone(RuntimeError):
    """The template process stopped (killed, or out of memory)."""


# --- the channel between a worker and its child ---------------------------------------------


def send(channel: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exactly(channel: socket.socket, size: int, deadline: float | None) -> bytes | None:
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            # Checked before each read: a child that prints without pause always has data waiting.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("past the deadline")
            channel.settimeout(remaining)
        chunk = channel.recv(min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


class UnexpectedMessage(ValueError):
    """A child sent what no child of Rayline's sends (its user code wrote to the channel)."""


class _ResultUnpickler(pickle.Unpickler):
    """Rebuilds only what a child sends (its log lines and its result): a child runs user code,
    and its worker serves the next executions, so nothing it sends may run code there."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "builtins" and name in _BUILTINS):
            return super().find_class(module, name)
        raise UnexpectedMessage(f"a child sent an object of {module}.{name}")


_BUILTINS = {
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "str",
    "bytes",
    "bytearray",
    "int",
    "float",
    "bool",
    "complex",
}
_ALLOWED = {
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("rayline.runtime.worker", "ExecutionResult"),
    ("rayline.domain.files", "FileValue"),
    ("rayline.domain.statuses", "ExecutionStatus"),
}


def receive(
    channel: socket.socket, deadline: float | None = None, max_bytes: int | None = None, trusted: bool = False
) -> Any | None:
    """The next message, or None at end of file; ``TimeoutError`` past ``deadline`` (monotonic).
    From a child (not ``trusted``), only the objects a child sends, of at most ``max_bytes``."""
    header = _receive_exactly(channel, _LENGTH.size, deadline)
    if header is None:
        return None
    size = _LENGTH.unpack(header)[0]
    if max_bytes is not None and size > max_bytes:
        raise UnexpectedMessage(f"a child sent a message of {size} bytes, more than {max_bytes}")
    data = _receive_exactly(channel, size, deadline)
    if data is None:
        return None
    return pickle.loads(data) if trusted else _ResultUnpickler(io.BytesIO(data)).load()


# --- the worker's side ----------------------------------------------------------------------


class Child:
    """A forked child, seen from the worker: its channel, and its end as the template saw it."""

    def __init__(self, pid: int, channel: socket.socket, control: socket.socket) -> None:
        self.pid, self.channel, self._control = pid, channel, control
        self.waited = False
        self.finished = False  # its result came in: it exits by itself, without being waited for

    def kill(self) -> None:
        """Stop the child and every process of its group."""
        with contextlib.suppress(OSError):
            self._control.send(b"kill")

    def wait(self) -> int:
        """The child's wait status (``os.waitstatus_to_exitcode`` reads it) once it has ended."""
        self.waited = True
        message = self._control.recv(64)
        if not message.startswith(b"exit:"):
            raise TemplateGone("the process template of this worker stopped while the execution ran")
        return int(message[5:])


class ForkServer:
    """The template of this worker process, started on first use (and again if it died)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()
        # A child whose result came in is not waited for (its exit takes a millisecond or two,
        # freeing its memory): its exit status is read before the next fork instead.
        self._unwaited: Child | None = None

    def _ensure_started(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._control is not None:
            return self._control
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = (
            "import sys, json; sys.path[:] = json.loads(sys.argv[2]); "
            "from rayline.runtime.forks import serve_forks; serve_forks(int(sys.argv[1]))"
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), json.dumps(sys.path)],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._control = ours
        return ours

    def _fork(self) -> Child:
        if self._unwaited is not None:
            unwaited, self._unwaited = self._unwaited, None
            with contextlib.suppress(TemplateGone, OSError):  # a template that died is started again
                unwaited.wait()
        control = self._ensure_started()
        try:
            control.send(b"fork")
            # Not inherited by what this worker starts (MSG_CMSG_CLOEXEC).
            answer, fds, _, _ = socket.recv_fds(control, 64, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError as error:
            raise TemplateGone(f"the process template of this worker stopped: {error}") from error
        if not answer.startswith(b"pid:") or not fds:
            raise TemplateGone("the process template of this worker stopped before forking")
        return Child(int(answer[4:]), socket.socket(fileno=fds[0]), control)

    @contextlib.contextmanager
    def fork(self):
        """A new child (one at a time per template). Its end is awaited before the next one: by
        ``Child.wait``, or at the next fork for a child whose result came in. A child left
        otherwise (its worker's code failed, or was interrupted) is stopped here."""
        with self._lock:
            try:
                child = self._fork()
            except TemplateGone:  # it died since it was last used: once more, with a new one
                self._abandon()
                child = self._fork()
            try:
                yield child
            finally:
                child.channel.close()
                if not child.waited:
                    if child.finished:
                        self._unwaited = child
                    else:
                        child.kill()
                        with contextlib.suppress(TemplateGone, OSError):
                            child.wait()

    def _abandon(self) -> None:
        """Forget the template (ended if it still runs): the next fork starts another."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def start(self) -> int:
        """Start the template now (it takes a fraction of a second); its pid."""
        with self._lock:
            self._ensure_started()
            assert self._process is not None
            return self._process.pid


_server = ForkServer()


def fork_server() -> ForkServer:
    """This worker process's fork server."""
    return _server


# --- the template's side --------------------------------------------------------------------


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group, and the child itself if it has no group yet
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _fork_child(control: socket.socket, template: int) -> tuple[int, socket.socket]:
    """Fork a child that waits for its execution on a channel of its own; (its pid, the
    channel's other end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the child: never returns into the template's loop
        try:
            os.setsid()
            _die_with_parent()
            if os.getppid() != template:  # the template died before prctl took effect
                os._exit(1)
            control.close()
            ours.close()
            from rayline.runtime import worker

            worker.run_child(theirs)
        finally:
            os._exit(70)
    theirs.close()
    return pid, ours


def serve_forks(control_fd: int) -> None:
    """The template's main loop (``python -c``, started by ``ForkServer``); never returns.

    The next child is forked ahead, once the one before it has ended: what a fork costs (a
    millisecond or two, and its start) is paid between executions, not by the next one.
    """
    from rayline.runtime import worker  # what every child runs, imported once here

    worker.prepare_template()
    # What is imported now is shared with every child, copy-on-write: the collector must not
    # touch it in them (that would copy its pages), nor here.
    gc.collect()
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    template = os.getpid()
    ready = _fork_child(control, template)
    while True:
        try:
            message = control.recv(64)
        except OSError:
            message = b""
        if not message:  # the worker is gone (the ready child dies with this process)
            os._exit(0)
        if message != b"fork":
            continue
        pid, channel = ready
        socket.send_fds(control, [b"pid:%d" % pid], [channel.fileno()])
        channel.close()
        _watch(control, pid)
        ready = _fork_child(control, template)


def _watch(control: socket.socket, pid: int) -> None:
    """Until the child ends: stop its group when told to (or when the worker is gone), then
    report its wait status and stop whatever of its group is left."""
    pidfd = os.pidfd_open(pid)
    worker_gone = False
    try:
        while True:
            watched: list[int] = [pidfd] if worker_gone else [control.fileno(), pidfd]
            ready, _, _ = select.select(watched, [], [])
            if pidfd in ready:
                break
            message = control.recv(64)
            if message == b"kill" or not message:
                _kill_group(pid)
                worker_gone = not message
    finally:
        os.close(pidfd)
    _kill_group(pid)  # what it started and left running (before the reap: its pid is not reused yet)
    _, status = os.waitpid(pid, 0)
    if worker_gone:
        os._exit(0)
    with contextlib.suppress(OSError):
        control.send(b"exit:%d" % status)
