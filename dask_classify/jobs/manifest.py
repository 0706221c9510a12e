"""The job's record in its output folder: what was done, by which job, and who is writing now.

``_manifest.json`` holds the job fingerprint (model identity and weights hash, every option that
decides the labels) and, per input, its fingerprint (size, modification time, ETag or checksum),
its output folder and the parts written (with their row and label counts). A rerun redoes an
input when its fingerprint or the job's changed, redoes the missing parts of an unfinished
input, and skips only what is truly done.

``_lock.json`` makes a job the only writer of an output folder: it names the host, pid and start
time and is refreshed by a heartbeat. A second job refuses to start while the lock is live; a
lock left by a dead job (its pid gone on this host, or no heartbeat for :data:`STALE_AFTER`
seconds) is taken over, and the job says so.

Both are JSON files written atomically (a local temporary file renamed into place; on object
stores one upload). Names starting with ``_`` are skipped by pandas, pyarrow and Dask readers,
so the output folder still reads as a data set.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dask_classify.errors import UsageError

__all__ = ["LOCK", "MANIFEST", "SUCCESS", "JobLock", "Manifest", "OutputFolder",
           "job_fingerprint"]

MANIFEST = "_manifest.json"
LOCK = "_lock.json"
SUCCESS = "_SUCCESS"
SUMMARY = "_summary.json"
#: Seconds without a heartbeat after which another host's lock counts as abandoned.
STALE_AFTER = 120.0
HEARTBEAT = 15.0
VERSION = 1


class OutputFolder:
    """A job's output folder on any fsspec filesystem, with atomic JSON reads and writes.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.jobs.manifest import OutputFolder
    >>> out = OutputFolder(tempfile.mkdtemp())
    >>> out.write_json("_x.json", {"a": 1})
    >>> out.read_json("_x.json"), out.read_json("_missing.json")
    ({'a': 1}, None)
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        import fsspec

        self.url = url
        self.fs, self.path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
        self.path = self.path.rstrip("/") or "/"
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.protocol = protocol
        self.local = protocol in ("file", "local")

    def join(self, *parts: str) -> str:
        return posixpath.join(self.path, *parts)

    def url_of(self, relative: str) -> str:
        full = self.join(relative)
        return full if self.local else self.fs.unstrip_protocol(full)

    def read_json(self, relative: str) -> Any:
        path = self.join(relative)
        try:
            with self.fs.open(path, "rb") as fh:
                return json.loads(fh.read().decode("utf-8"))
        except FileNotFoundError:
            return None

    def write_json(self, relative: str, payload: Any) -> None:
        data = (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode("utf-8")
        final = self.join(relative)
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        if not self.local:  # object stores: one upload, visible only when complete
            with self.fs.open(final, "wb") as fh:
                fh.write(data)
            return
        temp = self.join(posixpath.dirname(relative),
                         f".{posixpath.basename(relative)}.tmp-{uuid.uuid4().hex[:8]}")
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, final)

    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.join(relative))

    def remove(self, relative: str) -> None:
        path = self.join(relative)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def stale_temporaries(self) -> list[str]:
        """Hidden ``.*.tmp-*`` files left by a killed writer (safe to remove under the lock)."""
        if not self.local or not self.fs.exists(self.path):
            return []
        found = []
        for root, dirs, files in os.walk(self.path):
            found += [os.path.join(root, f) for f in files if f.startswith(".") and ".tmp-" in f]
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        return found


# ----------------------------------------------------------------------------- fingerprints
def _model_identity(clf: Any) -> dict[str, Any]:
    """What identifies a classifier's weights: a local folder's weights hash, or a hub id's
    revision (the commit it resolves to when the hub is reachable)."""
    from pathlib import Path

    from dask_classify.checkpoint import weights_fingerprint

    ident = clf.model_identifier
    if Path(ident).is_dir():
        return {"model": ident, "weights_sha256": weights_fingerprint(ident)}
    identity = {"model": ident, "revision": clf.revision}
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(ident, revision=clf.revision, token=clf.token)
        identity["commit"] = info.sha
    except Exception:  # noqa: BLE001 - offline: the hub id and revision are what we know
        pass
    return identity


#: Classifier parameters that never change a label (speed, placement, secrets, caches).
NEUTRAL_PARAMETERS = frozenset({"torch_threads", "model_inference_batch_size",
                                "max_batch_tokens", "sort_by_length", "token", "cache_dir",
                                "local_files_only"})


def what_changed(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The first difference between two job descriptions, in words (for the redo reason).

    Examples
    --------
    >>> from dask_classify.jobs.manifest import what_changed
    >>> old = {"classifiers": [{"settings": {"cpu_bf16": False}, "params": {"max_chars": 5}}]}
    >>> new = {"classifiers": [{"settings": {"cpu_bf16": True}, "params": {"max_chars": 5}}]}
    >>> what_changed(old, new)
    'the setting cpu_bf16 changed (False -> True)'
    """
    old, new = before.get("classifiers") or [], after.get("classifiers") or []
    if len(old) != len(new):
        return "the classifiers changed"
    for was, now in zip(old, new, strict=True):
        for part, words in (("params", "the option"), ("identity", "the model"),
                            ("settings", "the setting")):
            a, b = was.get(part) or {}, now.get(part) or {}
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    return f"{words} {key} changed ({a.get(key)!r} -> {b.get(key)!r})"
        if was.get("class") != now.get("class"):
            return "the classifier class changed"
    return "the model or the options changed"


def job_fingerprint(classifiers: Any, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A hash of everything that decides a job's output rows, and what it was made of.

    Parameters
    ----------
    classifiers : sequence of DistributedDataClassifier
        Each contributes its class, its model identity and every parameter except those in
        :data:`NEUTRAL_PARAMETERS`.
    options : dict
        Job options that change the rows (input format, bad-line handling, output format).

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.jobs.manifest import job_fingerprint
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert",
    ...                                        texts=["a text", "another"])
    >>> one, _ = job_fingerprint([DistributedDataClassifier(folder)], {"fmt": "parquet"})
    >>> fast, _ = job_fingerprint([DistributedDataClassifier(folder, torch_threads=1)],
    ...                           {"fmt": "parquet"})
    >>> cut, _ = job_fingerprint([DistributedDataClassifier(folder, max_chars=10)],
    ...                          {"fmt": "parquet"})
    >>> one == fast, one == cut
    (True, False)
    """
    described = []
    for clf in classifiers:
        params = {k: v for k, v in clf.params().items() if k not in NEUTRAL_PARAMETERS}
        settings = getattr(clf, "settings", None)
        described.append({"class": f"{type(clf).__module__}.{type(clf).__qualname__}",
                          "params": json.loads(json.dumps(params, default=str)),
                          "identity": _model_identity(clf),
                          # the environment switches read on the client (engine.spec.Settings)
                          "settings": settings.as_dict() if settings is not None else {}})
    description = {"classifiers": described, "options": options}
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return digest[:32], description


# ----------------------------------------------------------------------------- the manifest
@dataclass
class Manifest:
    """The parsed ``_manifest.json`` (see the module docstring)."""

    job: str | None = None
    job_description: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: OutputFolder) -> Manifest | None:
        raw = folder.read_json(MANIFEST)
        if raw is None:
            return None
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            raise UsageError(f"{folder.url_of(MANIFEST)} is not a manifest this version of "
                             "dask_classify wrote; remove it, or use --overwrite")
        return cls(raw.get("job"), raw.get("job_description") or {}, raw.get("inputs") or {})

    def save(self, folder: OutputFolder) -> None:
        folder.write_json(MANIFEST, {"version": VERSION, "job": self.job,
                                     "job_description": self.job_description,
                                     "inputs": self.inputs})

    def done_outputs(self) -> set[str]:
        return {entry["output"] for entry in self.inputs.values() if "output" in entry}


# ----------------------------------------------------------------------------- the lock
@dataclass
class LockInfo:
    host: str
    pid: int
    started: str
    heartbeat: float
    token: str

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started}"


_HELD: set[str] = set()  # tokens of the locks this process holds


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class JobLock:
    """The one-writer lock of an output folder (see the module docstring).

    Use as a context manager: entering takes the lock (or raises :class:`UsageError` naming
    the job that holds it), a daemon thread refreshes the heartbeat, leaving removes it.
    ``taken_over`` names a dead job whose lock was replaced.
    """

    def __init__(self, folder: OutputFolder, heartbeat: float = HEARTBEAT,
                 stale_after: float = STALE_AFTER):
        self.folder, self.heartbeat, self.stale_after = folder, heartbeat, stale_after
        self.info = LockInfo(socket.gethostname(), os.getpid(),
                             _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                             time.time(), uuid.uuid4().hex)
        self.taken_over: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _payload(self) -> dict[str, Any]:
        self.info.heartbeat = time.time()
        return dict(vars(self.info))

    def _current(self) -> LockInfo | None:
        raw = self.folder.read_json(LOCK)
        if not isinstance(raw, dict):
            return None
        try:
            return LockInfo(str(raw["host"]), int(raw["pid"]), str(raw["started"]),
                            float(raw["heartbeat"]), str(raw["token"]))
        except (KeyError, TypeError, ValueError):
            return None

    def _alive(self, other: LockInfo) -> bool:
        if other.host == self.info.host:
            if other.pid == self.info.pid:  # a job of this process: live while it holds it
                return other.token in _HELD
            return _pid_alive(other.pid)
        return time.time() - other.heartbeat < self.stale_after

    def _create(self) -> bool:
        """Create the lock file only if there is none (atomic locally)."""
        data = json.dumps(self._payload()).encode()
        path = self.folder.join(LOCK)
        self.folder.fs.makedirs(self.folder.path, exist_ok=True)
        if self.folder.local:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        if self.folder.fs.exists(path):
            return False
        self.folder.write_json(LOCK, self._payload())
        # object stores have no exclusive create: read back, the last writer wins
        time.sleep(0.2)
        current = self._current()
        return current is not None and current.token == self.info.token

    def __enter__(self) -> JobLock:
        for _ in range(3):
            if self._create():
                break
            other = self._current()
            if other is not None and self._alive(other):
                raise UsageError(
                    f"another dask-classify job is writing to {self.folder.url} "
                    f"({other.describe()}); wait for it, or use another output folder")
            self.taken_over = other.describe() if other is not None else "an unreadable lock"
            self.folder.remove(LOCK)
        else:
            raise UsageError(f"cannot take the lock of {self.folder.url}: other jobs keep "
                             "taking it")
        _HELD.add(self.info.token)
        self._thread = threading.Thread(target=self._beat, name="dask-classify-lock",
                                        daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.folder.write_json(LOCK, self._payload())
            except OSError:  # a passing storage error: the next beat tries again
                pass

    def __exit__(self, *exc: object) -> None:
        _HELD.discard(self.info.token)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = self._current()
        if current is not None and current.token == self.info.token:
            self.folder.remove(LOCK)
