"""classify_files: discovery, one schema per output, exact resume, one writer per output folder."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from dask_classify import DistributedDataClassifier, classify_files
from dask_classify.errors import InputError, UsageError
from dask_classify.jobs.manifest import LOCK, MANIFEST, JobLock, OutputFolder


@pytest.fixture(scope="module")
def clf(bert_ckpt):
    return DistributedDataClassifier(bert_ckpt, label_field="sentiment", score_field="p")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(texts, start=0):
    return [{"i": start + k, "text": t} for k, t in enumerate(texts)]


def _manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


# ----------------------------------------------------------------------------- discovery
def test_folders_are_read_recursively_and_spark_leftovers_ignored(tmp_path, clf, ag_news_texts):
    src = tmp_path / "in"
    _jsonl(src / "a.jsonl", _rows(ag_news_texts[:5]))
    _jsonl(src / "sub" / "b.jsonl", _rows(ag_news_texts[5:9]))
    for junk in ("_SUCCESS", "_metadata", "_common_metadata", ".part-0.crc", "x.jsonl.crc",
                 ".hidden.jsonl", "_temporary/0/task.jsonl"):
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("not an input")
    summary = classify_files(str(src), str(tmp_path / "out"), clf)
    assert summary.inputs == 2 and summary.rows_in == 9
    assert sorted(summary.outputs.values()) == [str(tmp_path / "out" / "a.parquet"),
                                                str(tmp_path / "out" / "sub" / "b.parquet")]


def test_hive_folders_become_columns_and_stay_folders(tmp_path, clf, ag_news_texts):
    src = tmp_path / "in"
    (src / "lang=en").mkdir(parents=True)
    pd.DataFrame({"text": ag_news_texts[:6]}).to_parquet(src / "lang=en" / "p.parquet")
    _jsonl(src / "lang=fr" / "q.jsonl", [{"text": t} for t in ag_news_texts[6:10]])
    out = tmp_path / "out"
    classify_files(str(src), str(out), clf)
    back = pd.read_parquet(out)  # the output reads back as one data set, lang from the folders
    assert sorted(back["lang"].astype(str).unique()) == ["en", "fr"]
    assert len(back) == 10 and (out / "lang=en" / "p.parquet" / "_SUCCESS").exists()
    jsonl = tmp_path / "out_jsonl"
    classify_files(str(src), str(jsonl), clf, output_format="jsonl")
    rows = [json.loads(line) for line in
            (jsonl / "lang=fr" / "q.jsonl" / "part.00000.jsonl").read_text().splitlines()]
    assert {r["lang"] for r in rows} == {"fr"}  # JSON Lines keep the column in the rows


def test_fsspec_urls_work_like_paths(tmp_path, clf, ag_news_texts):
    import fsspec

    fs = fsspec.filesystem("memory")
    with fs.open("/jobs-test/in/a.jsonl", "wb") as fh:
        fh.write("".join(json.dumps({"text": t}) + "\n" for t in ag_news_texts[:7]).encode())
    summary = classify_files("memory://jobs-test/in", "memory://jobs-test/out", clf)
    assert summary.rows_out == 7
    with fs.open("/jobs-test/out/a.parquet/part.00000.parquet", "rb") as fh:
        assert pd.read_parquet(fh)["sentiment"].notna().all()
    assert fs.exists("/jobs-test/out/a.parquet/_SUCCESS")
    local = tmp_path / "a.jsonl"
    _jsonl(local, [{"text": t} for t in ag_news_texts[:3]])
    assert classify_files(f"file://{local}", str(tmp_path / "o"), clf).rows_out == 3


def test_missing_inputs_and_overlapping_output_are_refused(tmp_path, clf, ag_news_texts):
    src = _jsonl(tmp_path / "in" / "a.jsonl", _rows(ag_news_texts[:3]))
    with pytest.raises(InputError, match="does not exist"):
        classify_files(str(tmp_path / "nope"), str(tmp_path / "out"), clf)
    with pytest.raises(InputError, match="matches no file"):
        classify_files(str(tmp_path / "in" / "*.csv"), str(tmp_path / "out"), clf)
    for output in (tmp_path / "in", tmp_path / "in" / "out"):
        with pytest.raises(UsageError, match="is, or lies inside, the input"):
            classify_files(str(tmp_path / "in"), str(output), clf)
    with pytest.raises(UsageError, match="lies inside the output folder"):
        classify_files(str(src), str(tmp_path), clf)
    assert not (tmp_path / "in" / "out").exists()  # refused before touching anything


# ----------------------------------------------------------------------------- one schema
def test_every_part_has_one_schema_with_null_and_mixed_partitions(tmp_path, clf, ag_news_texts):
    rows = []
    for i, text in enumerate(ag_news_texts[:40]):
        rows.append({"i": i, "text": None if i >= 30 else text,  # the last part: all-null text
                     "note": None if i < 30 else f"n{i}",         # null in the first parts
                     "score": i if i < 20 else i + 0.5,            # int, then float
                     "tags": ["a"] if i % 2 else None})
    src = _jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "out"
    classify_files(str(src), str(out), clf, partition_rows=10, blocksize="1KiB")
    folder = out / "mixed.parquet"
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part.*.parquet"))
    assert len(parts) >= 4
    schemas = {pq.read_schema(p).remove_metadata() for p in parts}
    assert len(schemas) == 1
    schema = schemas.pop()
    assert str(schema.field("p").type) in ("list<item: double>", "list<element: double>")
    back = pd.read_parquet(folder)
    assert back["i"].tolist() == list(range(40))
    assert back["sentiment"].isna().sum() == 10 and back["note"].notna().sum() == 10
    assert dd.read_parquet(str(folder)).compute()["i"].tolist() == list(range(40))


def test_small_shards_are_classified_together_and_written_apart(tmp_path, clf, bert_ckpt,
                                                                ag_news_texts):
    """Many small shards: grouped into few tasks, each shard's rows in its own output, in order,
    with the same numbers as one shard at a time; filter_by keeps each shard's chosen rows."""
    src = tmp_path / "in"
    texts = ag_news_texts[:300]
    for k in range(30):  # 30 shards of 10 rows, one of them empty of text values
        rows = _rows(texts[10 * k:10 * k + 10], start=10 * k)
        if k == 7:
            rows = [{"i": r["i"], "text": None} for r in rows]
        _jsonl(src / f"shard-{k:02d}.jsonl", rows)
    out = tmp_path / "out"
    summary = classify_files(str(src), str(out), clf)
    assert summary.tasks == 30 and summary.rows_out == 300
    single = clf.classify_partition(pd.DataFrame({"text": texts[:10]}))
    for k in range(30):
        back = pd.read_parquet(out / f"shard-{k:02d}.parquet")
        assert back["i"].tolist() == list(range(10 * k, 10 * k + 10))
        if k == 7:
            assert back["sentiment"].isna().all()
    first = pd.read_parquet(out / "shard-00.parquet")
    assert first["sentiment"].tolist() == single["sentiment"].tolist()
    np.testing.assert_allclose(np.stack(first["p"].to_numpy()), np.stack(single["p"].to_numpy()),
                               atol=1e-5)
    # filter_by: every shard keeps its own chosen rows, none moves to another shard's output
    keep = DistributedDataClassifier(bert_ckpt, label_field="sentiment", filter_by=["pos"])
    kept = classify_files(str(src), str(tmp_path / "kept"), keep)
    total = 0
    for k in range(30):
        back = pd.read_parquet(tmp_path / "kept" / f"shard-{k:02d}.parquet")
        assert set(back["sentiment"]) <= {"pos"}
        assert back["i"].between(10 * k, 10 * k + 9).all() and back["i"].is_monotonic_increasing
        total += len(back)
    assert total == kept.rows_out == int((pd.read_parquet(out)["sentiment"] == "pos").sum())


def test_a_column_of_mixed_types_names_the_file_and_column(tmp_path, clf):
    src = tmp_path / "in"
    for k in range(4):
        rows = [{"text": f"shard {k} row {i}"} for i in range(5)]
        if k == 2:
            rows[3] = {"text": 12345}
        _jsonl(src / f"s{k}.jsonl", rows)
    with pytest.raises(InputError, match=r"s2\.jsonl: column 'text' mixes values of different "):
        classify_files(str(src), str(tmp_path / "out"), clf)
    assert not (tmp_path / "out" / "s0.parquet").exists()  # refused before any work


def test_a_value_of_another_type_after_the_first_rows_names_file_and_column(tmp_path, clf):
    rows = [{"text": f"row {i}", "note": f"n{i}"} for i in range(1500)]
    rows[1400]["note"] = 5  # past the sample the schema was typed from
    src = _jsonl(tmp_path / "late.jsonl", rows)
    with pytest.raises(InputError, match=r"late\.jsonl: column 'note' holds values that are "
                                         r"not large_string like the file's first rows"):
        classify_files(str(src), str(tmp_path / "out"), clf)


def test_grouping_keeps_big_and_compressed_units_alone():
    from dask_classify.jobs.plan import _Task, group_tasks
    from dask_classify.readers import SourceMeta, Unit
    from dask_classify.readers.discovery import Source

    frame = pd.DataFrame({"text": pd.Series([], dtype=object)})
    other = pd.DataFrame({"text": pd.Series([], dtype=object), "x": pd.Series([], dtype=float)})

    def task(name, size, stream=False, meta_frame=frame):
        source = Source(url=f"/in/{name}", protocol="file", path=f"/in/{name}", fmt="jsonl",
                        compression="gzip" if stream else None, size=size, fingerprint="f",
                        relative=name)
        return _Task(source, Unit(0, block=(0, None), stream=stream),
                     SourceMeta(meta_frame, meta_frame, b"", 0), "/out", "/out", {}, "parquet",
                     None, "error", "label", "text", size)

    small = [task(f"s{i}", 1000) for i in range(8)]
    mixed = small[:3] + [task("big", 50_000_000), task("gz", 1000, stream=True)] + small[3:5] \
        + [task("other", 1000, meta_frame=other)] + small[5:]
    groups = group_tasks(mixed, threads=1)
    names = [[t.source.relative for t in g] for g in groups]
    assert names == [["s0", "s1", "s2"], ["big"], ["gz"], ["s3", "s4"], ["other"],
                     ["s5", "s6", "s7"]]
    # with many threads the groups shrink so that every thread gets work
    spread = group_tasks(small, threads=4)
    assert len(spread) >= 4 and [t for g in spread for t in g] == small


# ----------------------------------------------------------------------------- resume
def test_rerun_redoes_changed_inputs_and_changed_jobs_only(tmp_path, clf, ag_news_texts,
                                                           corpus):
    src = tmp_path / "in"
    a = _jsonl(src / "a.jsonl", _rows(ag_news_texts[:5]))
    _jsonl(src / "b.jsonl", _rows(ag_news_texts[5:10]))
    out = tmp_path / "out"
    classify_files(str(src), str(out), clf)
    b_part = out / "b.parquet" / "part.00000.parquet"
    b_time = b_part.stat().st_mtime_ns

    with a.open("a", encoding="utf-8") as fh:  # 5 rows appended to a.jsonl
        fh.write("".join(json.dumps(r) + "\n" for r in _rows(ag_news_texts[10:15], 5)))
    summary = classify_files(str(src), str(out), clf)
    assert summary.redone == [(str(a), "the input changed")] and summary.skipped == 1
    assert pd.read_parquet(out / "a.parquet")["i"].tolist() == list(range(10))
    assert b_part.stat().st_mtime_ns == b_time

    summary = classify_files(str(src), str(out), clf)  # nothing changed: nothing redone
    assert summary.skipped == 2 and summary.tasks == 0 and not summary.redone

    other = DistributedDataClassifier(clf.model_identifier, label_field="sentiment",
                                      score_field="p", max_chars=20)
    summary = classify_files(str(src), str(out), other)  # an option that changes labels
    reason = "the option max_chars changed (None -> 20)"  # the change, named
    assert sorted(summary.redone) == [(str(a), reason), (str(src / "b.jsonl"), reason)]
    assert b_part.stat().st_mtime_ns != b_time
    fast = DistributedDataClassifier(clf.model_identifier, label_field="sentiment",
                                     score_field="p", max_chars=20, torch_threads=1,
                                     model_inference_batch_size=3)
    assert classify_files(str(src), str(out), fast).skipped == 2  # speed options: same labels

    # retrained weights under the same path: the weights hash changes, the job is redone
    from dask_classify.testing import build_tiny_deberta_checkpoint

    model = build_tiny_deberta_checkpoint(tmp_path / "model", ["neg", "pos"], tokenizer="bert",
                                          texts=corpus[:300])
    mine = DistributedDataClassifier(model)
    classify_files(str(src), str(tmp_path / "out2"), mine)
    build_tiny_deberta_checkpoint(tmp_path / "model", ["neg", "pos"], tokenizer="bert",
                                  texts=corpus[:300], seed=5)
    assert len(classify_files(str(src), str(tmp_path / "out2"), mine).redone) == 2


def test_unknown_output_folder_is_not_overwritten(tmp_path, clf, ag_news_texts):
    src = _jsonl(tmp_path / "a.jsonl", _rows(ag_news_texts[:3]))
    out = tmp_path / "out"
    (out / "a.parquet").mkdir(parents=True)
    (out / "a.parquet" / "precious.txt").write_text("someone else's")
    with pytest.raises(UsageError, match="manifest does not record it"):
        classify_files(str(src), str(out), clf)
    assert (out / "a.parquet" / "precious.txt").exists()
    classify_files(str(src), str(out), clf, overwrite=True)
    assert not (out / "a.parquet" / "precious.txt").exists()


def test_compressed_text_is_streamed_in_pieces_in_order(tmp_path, clf, ag_news_texts):
    rows = _rows((ag_news_texts * 2)[:3000])
    lines = [json.dumps(r) for r in rows]
    lines[2500] = '{"i": 2500, "text": "cut'
    src = tmp_path / "big.jsonl.gz"
    src.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"big\.jsonl\.gz:2501: not valid JSON"):
        classify_files(str(src), str(out), clf, partition_rows=500)
    summary = classify_files(str(src), str(out), clf, partition_rows=500, on_bad_lines="skip")
    parts = sorted((out / "big.parquet").glob("part.*.parquet"))
    assert len(parts) >= 5  # one stream, several bounded pieces
    back = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert back["i"].tolist() == [i for i in range(3000) if i != 2500]
    assert summary.bad_lines[0].first_line == 2501 and summary.bad_lines_skipped == 1


# ----------------------------------------------------------------------------- one writer
def test_a_second_job_on_the_same_output_refuses_and_touches_nothing(tmp_path, clf,
                                                                      ag_news_texts):
    src = _jsonl(tmp_path / "a.jsonl", _rows(ag_news_texts[:3]))
    out = tmp_path / "out"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live job of another process on this host
        out.mkdir()
        lock = {"host": socket.gethostname(), "pid": sleeper.pid, "token": "x",
                "started": "2026-11-30 10:00:00 UTC", "heartbeat": time.time()}
        (out / LOCK).write_text(json.dumps(lock))
        with pytest.raises(UsageError, match=rf"pid {sleeper.pid}, started 2026-11-30 10:00"):
            classify_files(str(src), str(out), clf)
        assert sorted(p.name for p in out.iterdir()) == [LOCK]
    finally:
        sleeper.kill()
        sleeper.wait()
    summary = classify_files(str(src), str(out), clf)  # its pid is gone: taken over
    assert summary.lock_taken_over.startswith(f"host {socket.gethostname()}, pid {sleeper.pid}")
    assert not (out / LOCK).exists() and summary.rows_out == 3


def test_other_hosts_lock_is_live_until_its_heartbeat_stops(tmp_path):
    folder = OutputFolder(str(tmp_path))
    other = {"host": "node-17", "pid": 4242, "token": "t", "started": "then",
             "heartbeat": time.time()}
    folder.write_json(LOCK, other)
    with pytest.raises(UsageError, match="host node-17, pid 4242"):
        with JobLock(folder):
            pass
    folder.write_json(LOCK, {**other, "heartbeat": time.time() - 3600})
    with JobLock(folder) as lock:
        assert lock.taken_over == "host node-17, pid 4242, started then"
        with pytest.raises(UsageError, match=f"pid {os.getpid()}"):  # this process's own job
            with JobLock(folder):
                pass
    assert not (tmp_path / LOCK).exists()


# ----------------------------------------------------------------------------- workers
@pytest.mark.slow
def test_a_model_folder_the_workers_cannot_see_is_named(tmp_path, bert_ckpt, ag_news_texts):
    import shutil

    from dask_classify import get_client

    model = Path(shutil.copytree(bert_ckpt, tmp_path / "model"))
    clf = DistributedDataClassifier(model)
    src = tmp_path / "in"
    for k in range(2):
        _jsonl(src / f"{k}.jsonl", _rows(ag_news_texts[k * 3:(k + 1) * 3]))
    client = get_client(backend="cpu", n_workers=2, processes=True, reuse_existing=False,
                        dashboard_address=None)
    try:
        workers = sorted(client.scheduler_info()["workers"])
        with pytest.raises(UsageError) as info:  # the client read it; then it was gone
            classify_files(str(src), str(tmp_path / "out"), clf, client,
                           on_start=lambda summary, plan: shutil.rmtree(model))
        assert f"model folder {model} is not visible on worker(s) {', '.join(workers)}" \
            in str(info.value)
    finally:
        client.close()
        client.cluster.close()


def test_hub_ids_download_under_a_machine_wide_lock(tmp_path, bert_ckpt):
    import shutil

    from dask_classify.checkpoint import resolve_model_dir

    # a pre-filled Hugging Face cache, as a first download leaves it
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(bert_ckpt, snapshot)
    refs = tmp_path / "hub" / "models--acme--tiny" / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    found = resolve_model_dir("acme/tiny", cache_dir=str(tmp_path / "hub"),
                              local_files_only=True)
    assert found == snapshot
    assert (tmp_path / "hub" / ".locks" / "dask_classify--acme--tiny.lock").exists()
    labels = DistributedDataClassifier("acme/tiny", cache_dir=str(tmp_path / "hub"),
                                       local_files_only=True).labels
    assert labels == ["neg", "pos"]
    assert "tok123" not in repr(DistributedDataClassifier("acme/tiny", token="tok123"))


def test_job_api_needs_no_argparse_and_summary_is_written(tmp_path, clf, ag_news_texts):
    src = _jsonl(tmp_path / "a.jsonl", _rows(ag_news_texts[:4]) + [{"i": 4, "text": None}])
    out = tmp_path / "out"
    summary = classify_files([str(src)], str(out), [clf], progress=False)
    written = json.loads((out / "_summary.json").read_text())
    assert written["rows_in"] == summary.rows_in == 5 and written["null_text"] == 1
    assert sum(written["labels"].values()) == 5 and written["labels"]["<null>"] == 1
    entry = _manifest(out)["inputs"][str(src)]
    assert entry["complete"] and entry["parts"]["0"]["rows_out"] == 5
    assert np.isclose(written["seconds"], summary.seconds)
