"""Inputs through the classify command: every kind of Unicode passes through intact, and a
broken input exits 2 with one line naming the file and line, without a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_classify.cli import main

# one in-process worker: clusters of worker processes are tested in test_cluster/test_reliability
FAST = ["--no-progress", "--dashboard-address", "none", "--n-workers", "1"]

UNICODE = [
    "😀🎉 great fun, really",
    "非常好的电影",
    "فيلم رائع جدا",
    "עברית: סרט מצוין",
    "cafe\u0301 e\u0301te\u0301 (combining acute)",
    "control \x01\x02\x1b\x1f chars",
    "line\u2028separator\u2029paragraph\x85next-line",
    "tab\there and a\rcarriage return",
    "zero\u200bwidth\u200djoiner and \ufeff inside",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
    "flag 🇫🇷, family 👨‍👩‍👧, skin 👍🏽",
    "\u202eright-to-left override\u202c",
    'quotes " and \\ backslash, commas',
    "   ",
    "",
]


def _read_output(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part.*"))
    assert parts, f"no output in {folder}"
    if parts[0].suffix == ".parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    # Split on "\n" only: the texts hold U+2028 and U+0085, which str.splitlines() splits on.
    rows = [json.loads(line) for p in parts
            for line in p.read_text(encoding="utf-8").split("\n") if line]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("in_fmt, out_fmt", [("jsonl", "jsonl"), ("csv", "parquet"),
                                             ("parquet", "jsonl")])
def test_unicode_of_every_kind_passes_through_the_command(tmp_path, bert_ckpt, in_fmt, out_fmt):
    texts = UNICODE * 3
    frame = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
    src = tmp_path / f"u.{in_fmt}"
    if in_fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=bool(i % 2)) for i, r in
                 enumerate(frame.to_dict("records"))]
        lines[0] = '{"id": 0, "text": "😀🎉 great fun, really", "raw": "\x01"}'  # raw control
        lines[1:1] = [""]
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        frame["raw"] = ["\x01"] + [None] * (len(texts) - 1)
    elif in_fmt == "csv":  # quoted, or the bare \r would be a line break (test_delimited.py)
        frame.to_csv(src, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        frame.to_parquet(src, index=False)
    out = tmp_path / "out"
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
               "--output-format", out_fmt, *FAST])
    assert rc == 0
    result = _read_output(out / f"u.{out_fmt}")
    assert result["id"].tolist() == frame["id"].tolist()
    want = frame["text"].tolist()
    if in_fmt == "csv":  # pandas reads an empty CSV field as a missing value
        want = [t if t != "" else None for t in want]
    got = [t if isinstance(t, str) else None for t in result["text"]]
    assert got == want
    if in_fmt == "jsonl":
        assert result["raw"].iloc[0] == "\x01"
    assert result["preds"].notna().sum() == sum(isinstance(t, str) for t in want)


def test_command_bad_line_in_a_later_block_exits_2_with_one_line(tmp_path, inputs, bert_ckpt,
                                                                  small_sample, capfd):
    lines = [json.dumps(r) for r in inputs.rows(60)]
    lines[50] = '{"id": 50, "text": "cut'
    src = inputs.jsonl(tmp_path / "docs.jsonl", lines)
    out = tmp_path / "out"
    args = ["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
            "--blocksize", "1KiB", *FAST]
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [
        f"dask-classify classify: error: {src}:51: not valid JSON: Unterminated string "
        "starting at (column 20)"]
    # parts finished before the error are kept for a rerun, but the output is not marked done
    manifest = json.loads((out / "_manifest.json").read_text())
    assert not manifest["inputs"][str(src)]["complete"]
    assert not (out / "docs.parquet" / "_SUCCESS").exists()
    assert not list(out.rglob(".*tmp-*")) and not (out / "_lock.json").exists()

    assert main([*args, "--on-bad-lines", "skip"]) == 0
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err
    assert (f"skipped 1 bad line in {src} (first: line 51: not valid JSON: Unterminated "
            "string starting at (column 20))") in printed.out
    assert "rows in: 59  rows out: 59  null text: 0  bad lines skipped: 1" in printed.out
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["bad_lines_skipped"] == 1 and summary["rows_in"] == 59
    assert _read_output(out / "docs.parquet")["id"].tolist() == [i for i in range(60) if i != 50]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["inputs"][str(src)]["bad_lines_skipped"] == 1
    assert (out / "docs.parquet" / "_SUCCESS").exists()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_command_broken_csv_and_parquet_exit_2_without_traceback(tmp_path, inputs, bert_ckpt, kind,
                                                                 capfd):
    if kind == "csv":
        src = inputs.csv(tmp_path / "d.csv", [*inputs.csv_lines(5), "5,a,b,c,d"])
        expected = f"{src}:7: 5 fields where the header has 3"
    else:
        src = inputs.parquet(tmp_path / "d.parquet")
        src.write_bytes(src.read_bytes()[:100])
        expected = f"{src}: not a readable Parquet file (truncated or corrupt?): "
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output",
               str(tmp_path / "out"), *FAST])
    err = capfd.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"dask-classify classify: error: {expected}")
