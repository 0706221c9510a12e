"""The ``dask-classify`` command: classify, train, evaluate, convert, export.

``main(argv) -> int`` never calls ``sys.exit``; ``python -m dask_classify`` and the console script
both go through it. Exit status: 0 done; 2 a problem with what the user gave (a
:class:`~dask_classify.errors.UserError`, or a path that does not exist or cannot be written),
printed as one line naming it; 1 a bug in this package, shown with its traceback; 130 interrupted.
``--debug`` shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dask_classify.errors import InputError, UsageError, UserError

PROG = "dask-classify"

CLASSIFIERS = {
    "quality": "QualityClassifier",
    "domain": "DomainClassifier",
    "multilingual-domain": "MultilingualDomainClassifier",
    "content-type": "ContentTypeClassifier",
    "fineweb-edu": "FineWebEduClassifier",
    "fineweb-mixtral-edu": "FineWebMixtralEduClassifier",
    "fineweb-nemotron-edu": "FineWebNemotronEduClassifier",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _batch_tokens(text: str) -> int | str | None:
    word = text.lower()
    if word == "auto":
        return "auto"
    if word == "none":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, 'auto' or 'none', got {text!r}") from None


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument("--scheduler-address", metavar="ADDR",
                       help="join a running Dask scheduler (e.g. tcp://host:8786)")
    group.add_argument("--backend", choices=["auto", "cpu", "gpu"], default="auto",
                       help="local cluster kind when no scheduler is given (default: auto)")
    group.add_argument("--n-workers", type=_positive_int, metavar="N",
                       help="local workers (CPU default: distributed's split of the cores, "
                            "e.g. 2 single-threaded processes on 2 cores; GPU default: one per "
                            "GPU)")
    group.add_argument("--threads-per-worker", type=_positive_int, metavar="N",
                       help="threads per local worker (CPU default: cores / workers)")
    group.add_argument("--dashboard-address", default=":0", metavar="ADDR",
                       help="Dask dashboard address (default: a free port; 'none': a free "
                            "port, link not printed; distributed always serves it)")


def _classifier_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("classifier")
    group.add_argument("--model", metavar="DIR_OR_ID",
                       help="checkpoint folder or hub id (default: the bundled sentiment model, "
                            "or the --classifier's published model)")
    group.add_argument("--classifier", choices=sorted(CLASSIFIERS),
                       help="a published classifier's defaults (columns, lengths, model id)")
    group.add_argument("--cache-dir", metavar="DIR", help="Hugging Face cache for hub ids")
    group.add_argument("--text-field", help="text column (default: text)")
    group.add_argument("--label-field", help="label column to add")
    group.add_argument("--score-field", help="also add the probabilities (or score) here")
    group.add_argument("--filter-by", nargs="+", metavar="LABEL",
                       help="keep only rows with these labels")
    group.add_argument("--max-chars", type=_positive_int, metavar="N",
                       help="cut texts to N characters before tokenizing")
    group.add_argument("--max-seq-length", type=_positive_int, metavar="N",
                       help="token limit (default: the tokenizer's)")
    group.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="rows per forward pass (default 256)")
    group.add_argument("--max-batch-tokens", type=_batch_tokens, default="auto",
                       metavar="N|auto|none",
                       help="padded tokens per forward pass (default auto: 2048 on CPU, no "
                            "limit on GPU)")
    group.add_argument("--padding-side", choices=["right", "left"])
    group.add_argument("--quantize", choices=["int8"], help="dynamic int8 on CPU (opt-in)")
    group.add_argument("--engine", choices=["torch", "onnx"],
                       help="inference engine (default torch; onnx: ONNX Runtime on the CPU, "
                            "needs the [onnx] extra)")
    group.add_argument("--no-fold-duplicates", dest="fold_duplicates", action="store_false",
                       default=None, help="classify repeated texts once per row instead of "
                                          "once per chunk of rows")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a hub checkpoint's own code to run")


def build_parser() -> argparse.ArgumentParser:
    """The ``dask-classify`` argument parser (classify, train, evaluate, convert, export).

    Examples
    --------
    >>> from dask_classify.cli import build_parser
    >>> args = build_parser().parse_args(["classify", "in.jsonl", "--output", "out"])
    >>> args.command, args.output_format, args.on_bad_lines
    ('classify', 'parquet', 'error')
    """
    from dask_classify import __version__

    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of errors in the input too")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Classify text at scale with transformer models on Dask.",
        parents=[debug])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("classify", parents=[debug], help="classify JSONL/Parquet/CSV/TSV files",
                       description="Classify the text column of files and write them with the "
                                   "label (and score) columns added, one output folder per input.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    p.add_argument("--output", "-o", required=True, metavar="OUT", help="output folder")
    p.add_argument("--input-format", choices=["jsonl", "parquet", "csv", "tsv"],
                   help="default: from each file's extension")
    p.add_argument("--output-format", choices=["parquet", "jsonl"], default="parquet")
    p.add_argument("--blocksize", default="64MiB",
                   help="bytes per partition (default 64MiB; 0: one partition per text file)")
    p.add_argument("--partition-rows", type=_positive_int, default=20_000, metavar="N",
                   help="also aim for at most N rows per partition, so every worker gets work "
                        "(default 20000; Parquet row groups are never split)")
    p.add_argument("--on-bad-lines", choices=["error", "skip"], default="error",
                   help="a line that cannot be read (not JSON, not UTF-8, wrong number of CSV "
                        "fields): stop with an error naming the file and line (default), or "
                        "skip it and report how many were skipped")
    p.add_argument("--overwrite", action="store_true",
                   help="redo inputs whose output already exists (default: skip them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _classifier_options(p)
    _cluster_options(p)
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("train", parents=[debug], help="fine-tune a classifier from TSV files",
                       description="Fine-tune a BERT-family encoder (NeMo-style YAML config; "
                                   "dotted overrides like trainer.max_epochs=3).")
    p.add_argument("--config", "-c", metavar="YAML", help="config file (default: the packaged one)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", parents=[debug],
                       help="P/R/F1 and confusion matrix of a model on a TSV file",
                       description="Classify a labelled TSV file with the distributed "
                                   "classifier and report precision, recall, F1 and the "
                                   "confusion matrix.")
    p.add_argument("--model", required=True, metavar="DIR", help="checkpoint folder")
    p.add_argument("--data", required=True, metavar="TSV", help="sentence<TAB>label file")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="write metrics.json, confusion_matrix.json and confusion_matrix.png")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N")
    p.add_argument("--max-seq-length", type=_positive_int, metavar="N")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("convert", parents=[debug],
                       help="convert SST-2/IMDB/ChemProt/THUCNews to TSV",
                       description="Turn a public data set's original files into train.tsv, "
                                   "dev.tsv, test.tsv and labels.txt.")
    p.add_argument("--dataset", required=True, choices=["sst-2", "imdb", "chemprot", "thucnews"])
    p.add_argument("--source", required=True, metavar="DIR")
    p.add_argument("--target", required=True, metavar="DIR")
    p.add_argument("--uncased", action="store_true", help="lower-case the text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dev-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="THUCNews only: share held out as test")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("export", parents=[debug],
                       help="export a checkpoint for inference elsewhere (ONNX)",
                       description="Write a checkpoint as an ONNX graph (dynamic batch and "
                                   "sequence axes; outputs: the model's probabilities, or a "
                                   "regression head's scores) with its tokenizer and "
                                   "config.json. Needs the [onnx] extra.")
    p.add_argument("--model", metavar="DIR_OR_ID",
                   help="checkpoint folder or hub id (default: the bundled sentiment model)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx for now")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="skip ONNX Runtime's transformer optimizer (BERT-family models)")
    p.add_argument("--cache-dir", metavar="DIR", help="Hugging Face cache for hub ids")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a hub checkpoint's own code to run")
    p.set_defaults(func=_cmd_export)
    return parser


# --------------------------------------------------------------------------- classify
def default_model_dir() -> Path:
    """The bundled default model (a small SST-2 sentiment classifier).

    Examples
    --------
    >>> from dask_classify.cli import default_model_dir
    >>> default_model_dir().name, (default_model_dir() / "config.json").is_file()
    ('sst2-sentiment', True)
    """
    return Path(__file__).resolve().parent / "models" / "sst2-sentiment"


def make_classifier(args: argparse.Namespace):
    """The classifier a ``classify`` command line asks for (only options given are passed).

    Examples
    --------
    >>> from dask_classify.cli import build_parser, make_classifier
    >>> args = build_parser().parse_args(["classify", "x.jsonl", "-o", "out",
    ...                                   "--classifier", "quality", "--max-chars", "100"])
    >>> clf = make_classifier(args)
    >>> type(clf).__name__, clf.label_field, clf.max_chars
    ('QualityClassifier', 'quality_pred', 100)
    """
    import dask_classify

    kwargs: dict[str, Any] = {}
    for attr, key in [("text_field", "text_field"), ("label_field", "label_field"),
                      ("score_field", "score_field"), ("filter_by", "filter_by"),
                      ("max_chars", "max_chars"), ("max_seq_length", "max_seq_length"),
                      ("batch_size", "model_inference_batch_size"),
                      ("padding_side", "padding_side"), ("quantize", "quantize"),
                      ("engine", "engine"), ("fold_duplicates", "fold_duplicates"),
                      ("cache_dir", "cache_dir")]:
        value = getattr(args, attr, None)
        if value is not None:
            kwargs[key] = value
    if getattr(args, "max_batch_tokens", "auto") != "auto":
        kwargs["max_batch_tokens"] = args.max_batch_tokens
    if args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    if args.classifier:
        cls = getattr(dask_classify, CLASSIFIERS[args.classifier])
        return cls(model_identifier=args.model, **kwargs)
    model = args.model
    if model is None:
        model = default_model_dir()
        if not (model / "config.json").is_file():
            raise UsageError(f"no --model given and the bundled default model is missing "
                             f"({model})")
    return dask_classify.DistributedDataClassifier(model, **kwargs)


def _close_quietly(client: Any, owned: bool) -> None:
    """Close the client (and the cluster we started) without shutdown noise.

    Closing while the progress bar's feed is still being torn down makes distributed log a
    ``CancelledError`` traceback at ERROR level although nothing went wrong; the job's own
    errors have been raised (and reported) before this point.
    """
    import logging

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        cluster = getattr(client, "cluster", None) if owned else None
        if cluster is not None:  # worker processes log a failed heartbeat as the scheduler goes
            try:
                client.run(_silence_distributed_logs)
            except Exception:  # noqa: BLE001 - a worker already gone has nothing to say
                pass
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        quiet.setLevel(level)


def _start_client(args: argparse.Namespace):
    from dask_classify import get_client

    if args.scheduler_address:
        return get_client(args.scheduler_address), False
    dashboard = None if str(args.dashboard_address).lower() == "none" else args.dashboard_address
    client = get_client(backend=args.backend, n_workers=args.n_workers,
                        threads_per_worker=args.threads_per_worker, reuse_existing=False,
                        dashboard_address=dashboard)
    return client, True


def _cmd_classify(args: argparse.Namespace) -> int:

    from dask_classify.backend import resolve_backend
    from dask_classify.errors import CheckpointError
    from dask_classify.io import (
        clean_stale_temporaries,
        detect_format,
        done_for,
        expand_inputs,
        output_path,
    )

    inputs = expand_inputs(args.inputs)
    formats = {path: detect_format(path, args.input_format) for path in inputs}
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--output {out_dir} exists and is not a folder")
    targets = {path: output_path(out_dir, path, args.output_format) for path in inputs}
    clashes = [str(t) for t in set(targets.values())
               if list(targets.values()).count(t) > 1]
    if clashes:
        raise UsageError(f"several inputs would write the same output {clashes}; "
                         "classify them into different --output folders")
    clf = make_classifier(args)
    todo = [p for p in inputs if args.overwrite or not done_for(targets[p], p)]
    skipped = [p for p in inputs if p not in todo]
    for path in skipped:
        print(f"skip {path} (done: {targets[path]}; --overwrite to redo)")
    if not todo:
        print("nothing to do")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)

    backend = "cpu"
    client, owned = None, False
    try:
        client, owned = _start_client(args)
        if owned:
            client.run(_quiet_input_errors)
        if args.scheduler_address is None:
            backend = resolve_backend(args.backend)
        if client.dashboard_link and args.dashboard_address != "none":
            print(f"dashboard: {client.dashboard_link}")
        totals = {"rows_in": 0, "rows_out": 0, "null_text": 0, "bad_lines_skipped": 0,
                  "labels": {}}
        started = time.perf_counter()
        count_field = clf.label_field if clf.label_field in clf.output_fields \
            else clf.output_fields[0]
        for path in todo:
            try:
                n_in, n_null, label_counts, bad_lines = _classify_file(
                    client, clf, path, formats[path], targets[path], backend, args, count_field)
            except (InputError, CheckpointError):
                raise  # already names the file (and the line) or the model
            except UserError as exc:  # a column or value of this file: say which file
                raise InputError(f"{path}: {exc}") from exc
            if args.on_bad_lines == "skip":
                print(bad_lines)
            totals["bad_lines_skipped"] += bad_lines.count
            totals["rows_in"] += n_in
            totals["rows_out"] += int(label_counts.sum())
            totals["null_text"] += n_null
            for key, value in label_counts.items():
                totals["labels"][key] = totals["labels"].get(key, 0) + int(value)
            print(f"wrote {targets[path]} ({int(label_counts.sum())} of {n_in} rows)")
        elapsed = time.perf_counter() - started
    finally:
        if client is not None:
            _close_quietly(client, owned)
    totals["seconds"] = round(elapsed, 3)
    totals["docs_per_second"] = round(totals["rows_in"] / elapsed, 1) if elapsed else None
    totals["inputs"] = len(todo)
    totals["skipped"] = len(skipped)
    skipped_lines = (f"  bad lines skipped: {totals['bad_lines_skipped']}"
                     if args.on_bad_lines == "skip" else "")
    print(f"rows in: {totals['rows_in']}  rows out: {totals['rows_out']}  "
          f"null text: {totals['null_text']}{skipped_lines}")
    print("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(totals["labels"].items())))
    print(f"{totals['docs_per_second']} documents/s ({totals['seconds']} s)")
    (out_dir / "_summary.json").write_text(json.dumps(totals, indent=2) + "\n",
                                           encoding="utf-8")
    return 0


def _silence_distributed_logs() -> None:
    """Raise this worker's ``distributed`` log level to CRITICAL (run just before shutdown)."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet_input_errors() -> None:
    """Keep our own workers from logging tracebacks when a task fails on a bad input line.

    The error reaches the client, which prints it as one line; the worker's "Compute Failed"
    log with the traceback, and the "ended with CancelledError" warnings of the tasks still
    running when the cluster then closes, would only bury it. Other task failures are still
    logged. Run on the workers of clusters this command started (``client.run``).
    """
    import logging

    for name in ("distributed.worker", "distributed.worker.state_machine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _InputErrorFilter) for f in logger.filters):
            logger.addFilter(_InputErrorFilter())


class _InputErrorFilter:
    def filter(self, record: Any) -> bool:
        message = str(record.msg)
        if message.startswith("Compute Failed"):
            return "InputError(" not in str(record.args)
        return not message.endswith("ended with CancelledError")


def _classify_file(client, clf, path, fmt, target, backend, args, count_field):
    """Classify one input file into ``target``.

    Returns rows in, null texts, label counts and the :class:`~dask_classify.io.BadLines` report
    (no lines skipped unless ``--on-bad-lines skip``).
    """
    import pandas as pd

    from dask_classify.io import (
        MARKER,
        BadLines,
        atomic_folder,
        read_input,
        source_stamp,
        write_dataframe,
    )

    source = read_input(path, fmt, blocksize=args.blocksize, backend=backend,
                        on_bad_lines=args.on_bad_lines, partition_rows=args.partition_rows)
    ddf = source.frame
    out = clf(ddf)
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
        counts = write_dataframe(out, tmp, args.output_format, arrow_types=clf.arrow_types(),
                                 count_field=count_field)
        rows_in = ddf.map_partitions(len).sum()
        nulls = ddf[clf.text_field].isna().sum()
        wanted = [counts, rows_in, nulls]
        if source.bad_lines is not None:  # computed with the rest: each block is read once
            wanted.append(source.bad_lines)
        futures = client.compute(wanted)
        if not args.no_progress:
            from distributed import progress

            progress(futures)
            print()
        counts, n_in, n_null, *report = client.gather(futures)
        bad_lines = BadLines.from_frame(report[0]) if report else BadLines(str(path))
        (tmp / MARKER).write_text(json.dumps({**source_stamp(path), "rows_in": int(n_in),
                                              "bad_lines_skipped": bad_lines.count}),
                                  encoding="utf-8")
    label_counts = counts.groupby("label")["count"].sum() if len(counts) else pd.Series(
        dtype="int64")
    return int(n_in), int(n_null), label_counts, bad_lines


# --------------------------------------------------------------------------- train etc.
def _cmd_train(args: argparse.Namespace) -> int:
    from dask_classify.train import load_config, train  # MissingExtraError without [train]

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0
    import logging

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dask_classify").setLevel(logging.INFO)
    result = train(cfg)
    if result.test_report:
        from dask_classify.train.metrics import format_report

        print(f"test set ({cfg.model.test_ds.file_path}):\n{format_report(result.test_report)}")
    print(f"best model: {result.best_model}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dask_classify.train import evaluate

    evaluate(args.model, args.data, output_dir=args.output, batch_size=args.batch_size,
             max_seq_length=args.max_seq_length, verbose=True)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from dask_classify.train.convert import convert

    counts = convert(args.dataset, args.source, args.target, uncased=args.uncased,
                     seed=args.seed, dev_fraction=args.dev_fraction,
                     test_fraction=args.test_fraction)
    for split, rows in counts.items():
        print(f"{split}: {rows} rows -> {Path(args.target) / (split + '.tsv')}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from dask_classify.onnx import EXPORT_INFO, export_onnx

    model = args.model if args.model is not None else default_model_dir()
    out = export_onnx(model, args.output, cache_dir=args.cache_dir,
                      trust_remote_code=args.trust_remote_code, optimize=args.optimize,
                      overwrite=args.overwrite)
    info = json.loads((out / EXPORT_INFO).read_text(encoding="utf-8"))
    print(f"{out / 'model.onnx'}: inputs {', '.join(info['inputs'])} (batch x sequence), "
          f"outputs {info['returns']} for {info['labels']}; largest difference from PyTorch "
          f"{info['max_abs_diff']:.2g}")
    return 0


#: OS errors about a path the user gave: reported like a UserError (they name the path).
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
               NotADirectoryError)


def is_user_error(exc: BaseException) -> bool:
    """True for errors about the user's input (exit 2, one line); False for our bugs (exit 1).

    Examples
    --------
    >>> from dask_classify.cli import is_user_error
    >>> from dask_classify.errors import TextColumnError
    >>> is_user_error(TextColumnError("text column 'text' holds an int")), is_user_error(
    ...     FileNotFoundError("no such file: in.jsonl"))
    (True, True)
    >>> is_user_error(TypeError("unsupported operand")), is_user_error(KeyError("preds"))
    (False, False)
    """
    return isinstance(exc, (UserError, *PATH_ERRORS))


def _message(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text.strip() or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or usage, 1 a bug).

    Examples
    --------
    >>> from dask_classify.cli import main
    >>> main(["--version"])  # doctest: +ELLIPSIS
    dask-classify ...
    0
    >>> main(["classify", "no-such-file.jsonl", "--output", "out"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argparse usage error
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every error is reported
        if is_user_error(exc):
            if debug:
                traceback.print_exc()
            print(f"{PROG} {args.command}: error: {_message(exc)}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"{PROG} {args.command}: internal error ({type(exc).__name__}): this is a bug in "
              "dask_classify; please report it with the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
