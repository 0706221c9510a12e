"""Which files of a model folder hold its weights, and the one hash of them.

One rule for every caller: the loaders (which file to read), the ONNX export cache (its key),
the shipped-graph check (were these weights exported?) and the job fingerprint (did the model
change?). Every hash is SHA-256, each file read once per process while its size and
modification time stay the same.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from dask_classify.weights import has_weights, weights_fingerprint
>>> folder = Path(tempfile.mkdtemp())
>>> has_weights(folder)
False
>>> _ = (folder / "model.safetensors").write_bytes(b"weights")
>>> first = weights_fingerprint(folder)
>>> _ = (folder / "model.safetensors").write_bytes(b"other weights")
>>> has_weights(folder), len(first), weights_fingerprint(folder) != first
(True, 64, True)
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["GRAPH_PATTERN", "PICKLE_NAMES", "SAFETENSORS_NAME", "WEIGHT_PATTERNS", "export_key",
           "file_sha256", "has_weights", "weight_files", "weights_fingerprint"]

#: The weights file the loaders read first, and the pickles they accept after it (in order,
#: only with ``torch.load(weights_only=True)``).
SAFETENSORS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt")
#: Every file that holds torch weights (sharded safetensors and their index included).
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.pt", "*.pth")
#: An exported graph: weights too, for the engines that run it.
GRAPH_PATTERN = "*.onnx"

_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def weight_files(folder: str | os.PathLike, graphs: bool = False) -> list[Path]:
    """The weight files of ``folder`` (``graphs``: exported ONNX graphs too), sorted by name."""
    folder = Path(folder)
    patterns = WEIGHT_PATTERNS + ((GRAPH_PATTERN,) if graphs else ())
    found = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def has_weights(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds torch weights (an export's output holds only a graph)."""
    return bool(weight_files(folder))


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of one file, cached per process by path, size and modification time."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = _HASHES.get(key)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                digest.update(block)
        known = digest.hexdigest()
        with _LOCK:
            _HASHES[key] = known
    return known


def _digest(header: str, paths: list[Path]) -> str:
    digest = hashlib.sha256(header.encode())
    for path in paths:
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def weights_fingerprint(folder: str | os.PathLike) -> str:
    """A SHA-256 (64 hex digits) of a model folder's weight files and exported graphs.

    What a job's fingerprint records of a local model, so that a rerun with retrained weights
    under the same path redoes its outputs.
    """
    return _digest("", weight_files(folder, graphs=True))


def export_key(folder: str | os.PathLike, version: int) -> str:
    """32 hex digits naming a graph exported from ``folder``'s ``config.json`` and weights by
    export format ``version``: the ONNX cache key, and what a shipped graph records."""
    folder = Path(folder)
    config = [folder / "config.json"] if (folder / "config.json").is_file() else []
    return _digest(f"dask_classify onnx export v{version}\n", config + weight_files(folder))[:32]
