"""The dask-classify command end to end: main([...]) for each subcommand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_classify import DistributedDataClassifier
from dask_classify.cli import main

# one in-process worker: clusters of worker processes are tested in test_cluster/test_reliability
FAST = ["--no-progress", "--dashboard-address", "none", "--n-workers", "1"]


@pytest.fixture(scope="module")
def frame(ag_news_texts):
    texts = ag_news_texts[:120]
    texts[5] = None
    return pd.DataFrame({"id": range(120), "text": texts})


@pytest.fixture(scope="module")
def expected(frame, bert_ckpt):
    return DistributedDataClassifier(bert_ckpt, score_field="p")(frame)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    return path


def _read(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part.*"))
    assert parts, f"no output in {folder}"
    if parts[0].suffix == ".parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return pd.concat([pd.read_json(p, lines=True) for p in parts], ignore_index=True)


@pytest.mark.parametrize("in_fmt", ["jsonl", "parquet", "csv", "tsv"])
@pytest.mark.parametrize("out_fmt", ["parquet", "jsonl"])
def test_classify_every_format(tmp_path, frame, expected, bert_ckpt, in_fmt, out_fmt, capsys):
    src = _write(frame, tmp_path / f"docs.{in_fmt}", in_fmt)
    out = tmp_path / "out"
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
               "--output-format", out_fmt, "--score-field", "p", "--blocksize", "4KiB", *FAST])
    assert rc == 0
    result = _read(out / f"docs.{out_fmt}")
    assert result["id"].tolist() == list(range(120))  # every row, in order
    assert result["preds"].isna().tolist() == expected["preds"].isna().tolist()
    assert result["preds"].fillna("-").tolist() == expected["preds"].fillna("-").tolist()
    got = np.array([list(p) for p in result["p"] if p is not None and not isinstance(p, float)])
    want = np.array([p for p in expected["p"] if p is not None])
    np.testing.assert_allclose(got, want, atol=1e-5)  # other blocks, other batches: fp32 noise
    printed = capsys.readouterr().out
    assert "rows in: 120  rows out: 120  null text: 1" in printed
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["rows_in"] == 120 and summary["labels"]["<null>"] == 1
    assert sum(summary["labels"].values()) == 120


def test_classify_filter_and_text_field(tmp_path, frame, expected, bert_ckpt):
    src = _write(frame.rename(columns={"text": "body"}), tmp_path / "d.parquet", "parquet")
    out = tmp_path / "out"
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
               "--text-field", "body", "--label-field", "sentiment", "--filter-by", "pos",
               *FAST])
    assert rc == 0
    result = _read(out / "d.parquet")
    assert result["id"].tolist() == expected.index[expected["preds"] == "pos"].tolist()
    assert set(result["sentiment"]) == {"pos"}


def test_partitioned_parquet_folder_keeps_one_output_per_file(tmp_path, frame, expected,
                                                               bert_ckpt, capsys):
    src = tmp_path / "dataset"
    src.mkdir()
    for i, start in enumerate(range(0, 120, 50)):  # what dask/spark write: part.NNNNN.parquet
        frame.iloc[start : start + 50].to_parquet(src / f"part.{i:05d}.parquet", index=False)
    out = tmp_path / "out"
    assert main(["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
                 *FAST]) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["part.00000.parquet", "part.00001.parquet", "part.00002.parquet"]
    result = pd.concat([_read(out / name) for name in names], ignore_index=True)
    assert result["id"].tolist() == list(range(120))
    assert result["preds"].fillna("-").tolist() == expected["preds"].fillna("-").tolist()
    # two inputs that differ only in format would still write one folder: refused
    _write(frame, tmp_path / "same.jsonl", "jsonl")
    _write(frame, tmp_path / "same.parquet", "parquet")
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "same.*"), "--model", str(bert_ckpt), "--output",
                 str(out), *FAST]) == 2
    assert "would write the same output" in capsys.readouterr().err


def test_resume_skips_finished_inputs_and_overwrite_redoes_them(tmp_path, frame, bert_ckpt,
                                                                 capsys):
    a = _write(frame.iloc[:40], tmp_path / "a.jsonl", "jsonl")
    _write(frame.iloc[40:], tmp_path / "b.jsonl", "jsonl")
    out = tmp_path / "out"
    args = ["--model", str(bert_ckpt), "--output", str(out), *FAST]
    assert main(["classify", str(a), *args]) == 0
    first = (out / "a.parquet" / "part.00000.parquet").stat().st_mtime_ns
    # a killed writer leaves hidden temporary files, never a finished-looking part
    (out / ".part.00000.parquet.tmp-dead").write_text("")
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "*.jsonl"), *args]) == 0
    printed = capsys.readouterr().out
    assert "skip" in printed and "a.jsonl" in printed and "rows in: 80" in printed
    assert (out / "a.parquet" / "part.00000.parquet").stat().st_mtime_ns == first
    assert len(_read(out / "b.parquet")) == 80
    assert not list(out.glob(".*"))  # stale temporaries cleaned
    assert main(["classify", str(a), *args, "--overwrite"]) == 0
    assert (out / "a.parquet" / "part.00000.parquet").stat().st_mtime_ns != first


@pytest.mark.parametrize(
    "argv, message",
    [
        (["classify", "missing.jsonl", "--output", "o"], "does not exist"),
        (["classify", "{src}", "--output", "o", "--model", "{model}", "--text-field", "nope"],
         "text column 'nope' is not in"),
        (["classify", "{src}", "--output", "o", "--model", "{model}", "--filter-by", "meh"],
         "not labels"),
        (["classify", "{src}", "--output", "o", "--model", "{tmp}/no-model"],
         "does not exist"),
        (["classify", "{tmp}/data.unknown", "--output", "o", "--model", "{model}"],
         "--input-format"),
    ],
)
def test_bad_input_gives_a_clear_message(tmp_path, frame, bert_ckpt, argv, message, capsys):
    src = _write(frame, tmp_path / "data.jsonl", "jsonl")
    (tmp_path / "data.unknown").write_text("x")
    argv = [a.format(src=src, model=bert_ckpt, tmp=tmp_path) for a in argv]
    argv = [str(tmp_path / a) if a == "o" else a for a in argv]
    assert main([*argv, *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["classify", "x.jsonl"], ["classify", "x", "--output", "o", "--batch-size", "0"],
     ["classify", "x", "-o", "o", "--classifier", "nope"], ["frobnicate"], []],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["classify", "train", "evaluate", "convert"])
def test_help_on_every_subcommand(command, capsys):
    assert main([command, "--help"]) == 0
    assert f"usage: dask-classify {command}" in capsys.readouterr().out


def test_python_dash_m_is_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "dask_classify", "--help"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "classify" in proc.stdout and "convert" in proc.stdout


def test_convert_command(tmp_path, data_dir, capsys):
    rc = main(["convert", "--dataset", "imdb", "--source", str(data_dir / "imdb"),
               "--target", str(tmp_path / "imdb")])
    assert rc == 0
    assert "test: 30 rows" in capsys.readouterr().out
    assert (tmp_path / "imdb" / "train.tsv").is_file()
    assert main(["convert", "--dataset", "imdb", "--source", str(tmp_path / "none"),
                 "--target", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_train_then_evaluate_commands(tmp_path, data_dir, capsys):
    from dask_classify.testing import build_tiny_encoder, default_corpus

    encoder = build_tiny_encoder(tmp_path / "encoder", "bert", default_corpus(3000))
    lines = (data_dir / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(lines[:301]) + "\n", encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("\n".join([lines[0], *lines[301:401]]) + "\n",
                                      encoding="utf-8")
    exp = tmp_path / "exp"
    common = [f"model.language_model.pretrained_model_name={encoder}",
              f"model.train_ds.file_path={tmp_path / 'train.tsv'}",
              f"model.validation_ds.file_path={tmp_path / 'dev.tsv'}",
              f"model.test_ds.file_path={tmp_path / 'dev.tsv'}",
              "model.dataset.max_seq_length=32", "trainer.max_epochs=1",
              "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
              f"exp_manager.exp_dir={exp}"]
    assert main(["train", *common]) == 0
    printed = capsys.readouterr().out
    assert "test set" in printed and "macro avg" in printed
    assert (exp / "best_model" / "config.json").is_file()
    assert main(["evaluate", "--model", str(exp / "best_model"), "--data",
                 str(tmp_path / "dev.tsv"), "--output", str(tmp_path / "eval")]) == 0
    assert "confusion matrix" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "eval" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["train", *common, "model.datset.num_classes=2"]) == 2
    assert "model.datset" in capsys.readouterr().err
    assert main(["train", "--print-config", "trainer.max_epochs=7"]) == 0
    assert "max_epochs: 7" in capsys.readouterr().out


# ----------------------------------------------------------------------------- exit statuses
def test_our_bugs_exit_1_with_a_traceback_and_user_errors_exit_2_in_one_line(
        tmp_path, frame, bert_ckpt, capsys, monkeypatch):
    import dask_classify.jobs as jobs

    src = _write(frame, tmp_path / "d.jsonl", "jsonl")
    args = ["classify", str(src), "--model", str(bert_ckpt), "--output", str(tmp_path / "o"),
            *FAST]
    for bug in (TypeError("unsupported operand"), KeyError("preds"),
                UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")):
        def broken(*args, bug=bug, **kwargs):
            raise bug

        monkeypatch.setattr(jobs, "classify_files", broken)
        assert main(args) == 1  # never disguised as a usage error
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err
        assert f"internal error ({type(bug).__name__}): this is a bug" in err
    monkeypatch.undo()
    bad = ["classify", str(src), "--model", str(bert_ckpt), "--output", str(tmp_path / "o"),
           "--text-field", "nope", *FAST]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main([*bad, "--debug"]) == 2  # --debug: the same error with its traceback
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().endswith("text column 'nope' is not in the DataFrame; columns: "
                                "['id', 'text']")


def test_train_without_the_train_extra_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['torchmetrics'] = None; sys.modules['lightning'] = None\n"
            "from dask_classify.cli import main\n"
            "sys.exit(main(['train', '--print-config']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "dask-classify train: error: training and evaluation (dask_classify.train) needs the "
        "[train] extra (No module named 'lightning'): pip install 'dask_classify[train]'"]


# ----------------------------------------------------------------------------- progress
def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log():
    import io

    from dask_classify.jobs.run import _Progress

    log = io.StringIO()
    progress = _Progress(40, log)
    for _ in range(40):
        progress.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10  # one line per 10%
    assert lines[0].startswith("progress: 4/40 parts (10%)")
    assert lines[-1].startswith("progress: 40/40 parts (100%)")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    progress = _Progress(3, tty)
    for _ in range(3):
        progress.update()
    assert tty.getvalue().startswith("\r[") and tty.getvalue().endswith("\n")
    assert "3/3 parts" in tty.getvalue()


def test_a_one_part_input_runs_in_this_process(tmp_path, frame, bert_ckpt, capsys):
    src = _write(frame, tmp_path / "d.jsonl", "jsonl")
    assert main(["classify", str(src), "--model", str(bert_ckpt), "--output",
                 str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "dashboard" not in printed  # no cluster was started for one part
    summary = json.loads((tmp_path / "o" / "_summary.json").read_text())
    assert summary["where"] == "in-process" and summary["tasks"] == 1
    assert "progress: 1/1 parts (100%)" in printed  # a pipe, not a terminal: a plain line
