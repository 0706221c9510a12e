"""Discovery (:mod:`dask_classify.readers.discovery`): formats from extensions, output names,
and the files a job's inputs stand for, on the local filesystem and on fsspec's memory one.

``tests/jobs/test_job.py`` checks the same rules through :func:`classify_files`."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

import dask_classify.readers.discovery as discovery
from dask_classify.errors import InputError, UsageError
from dask_classify.readers.discovery import compression_of, detect_format, discover, output_name


@pytest.mark.parametrize("name, fmt", [
    ("a.jsonl", "jsonl"), ("a.json", "jsonl"), ("a.ndjson", "jsonl"), ("A.JSONL.GZ", "jsonl"),
    ("a.parquet", "parquet"), ("a.pq", "parquet"), ("s3://b/k/a.csv.zst", "csv"),
    ("a.tsv.bz2", "tsv"), ("a.tab", "tsv"), ("x/a.jsonl/", "jsonl"),
])
def test_detect_format_from_the_extension(name, fmt):
    assert detect_format(name) == fmt


def test_detect_format_forced_and_unknown():
    assert detect_format("notes.txt", "tsv") == "tsv"
    with pytest.raises(UsageError, match="input format must be one of"):
        detect_format("a.jsonl", "xml")
    with pytest.raises(InputError, match=r"cannot tell the format of 'notes\.txt\.gz'.*"
                                         r"--input-format"):
        detect_format("notes.txt.gz")


def test_compression_of():
    assert [compression_of(n) for n in ("a.gz", "a.BZ2", "a.xz", "a.zst", "a.jsonl", "a")] == [
        "gzip", "bz2", "xz", "zstd", None, None]


@pytest.mark.parametrize("relative, fmt, expected", [
    ("news.jsonl.gz", "parquet", "news.parquet"),
    ("year=2024/part.00001.parquet", "jsonl", "year=2024/part.00001.jsonl"),
    ("v1.2_notes", "parquet", "v1.2_notes.parquet"),
    ("a.csv", "csv", "a.csv"),
    ("notes.txt", "jsonl", "notes.txt.jsonl"),  # only known suffixes are removed
    (".gz", "jsonl", ".gz.jsonl"),
])
def test_output_name(relative, fmt, expected):
    assert output_name(relative, fmt) == expected


def _tree(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"text": "a"}\n')
    return root


def test_discover_a_folder_recursively_without_hidden_and_spark_files(tmp_path):
    _tree(tmp_path, ["b.jsonl", "a.jsonl", "sub/c.csv", ".hidden.jsonl", "_SUCCESS",
                     "_temporary/0/task.jsonl", "x.jsonl.crc", "sub/.part-0.crc"])
    sources = discover([str(tmp_path)])
    assert [(s.relative, s.fmt) for s in sources] == [("a.jsonl", "jsonl"), ("b.jsonl", "jsonl"),
                                                      ("sub/c.csv", "csv")]
    first = sources[0]
    assert first.url == str(tmp_path / "a.jsonl") and first.is_local and first.protocol == "file"
    assert first.size == len('{"text": "a"}\n') and first.compression is None
    assert json.loads(first.fingerprint)["size"] == first.size


def test_discover_hive_partition_values(tmp_path):
    _tree(tmp_path, ["lang=en%20us/year=2024/a.jsonl", "2024-01=x/b.jsonl", "=y/c.jsonl"])
    found = {s.relative: s.partition_values for s in discover([str(tmp_path)])}
    assert found == {"lang=en%20us/year=2024/a.jsonl": (("lang", "en us"), ("year", "2024")),
                     "2024-01=x/b.jsonl": (), "=y/c.jsonl": ()}  # keys must be identifiers


def test_discover_globs_files_order_and_duplicates(tmp_path):
    _tree(tmp_path, ["in/a.jsonl", "in/b.jsonl", "in/deep/c.jsonl", "z.jsonl"])
    assert [s.relative for s in discover([str(tmp_path / "in" / "*.jsonl")])] == [
        "a.jsonl", "b.jsonl"]
    assert [s.relative for s in discover([str(tmp_path / "in" / "**" / "*.jsonl")])] == [
        "a.jsonl", "b.jsonl", "deep/c.jsonl"]
    # inputs keep the order given; a file named twice is read once
    sources = discover([str(tmp_path / "z.jsonl"), str(tmp_path / "in"),
                        str(tmp_path / "in" / "a.jsonl")])
    assert [s.relative for s in sources] == ["z.jsonl", "a.jsonl", "b.jsonl", "deep/c.jsonl"]


def test_discover_forced_format_and_compression(tmp_path):
    (tmp_path / "notes.txt.gz").write_bytes(gzip.compress(b"id,text\n1,a\n"))
    with pytest.raises(InputError, match="cannot tell the format"):
        discover([str(tmp_path)])
    (source,) = discover([str(tmp_path)], input_format="csv")
    assert (source.fmt, source.compression) == ("csv", "gzip")
    with source.open() as f:
        assert f.read() == b"id,text\n1,a\n"
    with source.open(decompress=False) as f:
        assert f.read(2) == b"\x1f\x8b"  # the gzip magic


def test_discover_refuses_missing_and_empty_inputs(tmp_path):
    _tree(tmp_path, ["only/_SUCCESS"])
    with pytest.raises(InputError, match=r"input '.*nope' does not exist"):
        discover([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches no file"):
        discover([str(tmp_path / "*.csv")])
    with pytest.raises(InputError, match="matches no file"):
        discover([str(tmp_path / "only")])


def test_discover_fsspec_memory_urls_carry_their_options():
    import fsspec

    root = f"/discovery-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe({f"{root}/in/a.jsonl": b'{"text": "a"}\n', f"{root}/in/p=1/b.parquet": b"x"})
    try:
        sources = discover([f"memory://{root}/in"], storage_options={"skip_instance_cache": True})
        assert [(s.url, s.protocol, s.fmt) for s in sources] == [
            (f"memory://{root}/in/a.jsonl", "memory", "jsonl"),
            (f"memory://{root}/in/p=1/b.parquet", "memory", "parquet")]
        assert sources[1].partition_values == (("p", "1"),)
        assert json.loads(sources[0].options) == {"skip_instance_cache": True}
        with sources[0].open() as f:
            assert f.read() == b'{"text": "a"}\n'
    finally:
        fs.rm(root, recursive=True)


def test_fingerprint_keeps_what_tells_a_changed_file():
    fingerprint = json.loads(discovery._fingerprint(
        {"size": 12, "mtime": 1.5, "ETag": '"abc"', "name": "ignored", "created": None}))
    assert fingerprint == {"size": 12, "mtime": "1.5", "ETag": '"abc"'}


def test_the_old_module_paths_are_the_same_modules():
    # in a fresh interpreter: pytest's --doctest-modules imports the alias files by path, and
    # its importlib mode puts its own module object back in sys.modules
    import subprocess
    import sys

    code = ("import importlib\n"
            "pairs = [('dask_classify.discovery', 'dask_classify.readers.discovery'),\n"
            "         ('dask_classify.manifest', 'dask_classify.jobs.manifest'),\n"
            "         ('dask_classify.writers', 'dask_classify.jobs.writers')]\n"
            "for old, new in pairs:\n"
            "    assert importlib.import_module(old) is importlib.import_module(new), old\n"
            "import dask_classify.discovery as alias\n"
            "from dask_classify.readers import discovery\n"
            "alias._ignored = lambda relative: False\n"
            "assert discovery._ignored('_SUCCESS') is False\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
