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
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dask_classify.bundled import default_model_dir  # noqa: F401 - its old home
from dask_classify.classifiers import PUBLISHED, published
from dask_classify.errors import UsageError, UserError
from dask_classify.options import ENGINES, OPTION_NAMES, PADDING_SIDES, QUANTIZE, positive_int

PROG = "dask-classify"

#: Published classifiers by command-line name (the one registry lives in the classifiers).
CLASSIFIERS = {name: cls for name, (_, cls) in PUBLISHED.items()}


def _fold_mode(text: str) -> bool | str:
    modes = {"chunk": True, "global": "global"}
    if text not in modes:
        raise argparse.ArgumentTypeError(f"expected chunk or global, got {text!r}")
    return modes[text]


def _positive_int(text: str) -> int:
    """argparse's view of :func:`dask_classify.options.positive_int` (the one rule)."""
    try:
        return positive_int("value", int(text))
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"anon\": true}'")
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
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler-address", metavar="ADDR",
                       help="join a running Dask scheduler (e.g. tcp://host:8786)")
    where.add_argument("--scheduler-file", metavar="PATH",
                       help="join the scheduler that wrote PATH (dask scheduler "
                            "--scheduler-file, dask-jobqueue, dask-mpi)")
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
    """The classifier's flags: each one's ``dest`` is a :class:`ClassifierOptions` field and
    its default is absent, so :func:`make_classifier` passes exactly the options given."""
    group = parser.add_argument_group("classifier")
    group.add_argument("--model", metavar="DIR_OR_ID",
                       help="checkpoint folder or hub id (default: the bundled sentiment model, "
                            "or the --classifier's published model)")
    group.add_argument("--classifier", choices=sorted(PUBLISHED),
                       help="a published classifier's defaults (columns, lengths, model id)")
    unset = argparse.SUPPRESS

    def option(*flags: str, **kwargs: Any) -> None:
        assert kwargs.get("dest", flags[0][2:].replace("-", "_")) in OPTION_NAMES, flags
        group.add_argument(*flags, default=unset, **kwargs)

    option("--cache-dir", metavar="DIR", help="Hugging Face cache for hub ids")
    option("--text-field", help="text column (default: text)")
    option("--label-field", help="label column to add")
    option("--score-field", help="also add the probabilities (or score) here")
    option("--filter-by", nargs="+", metavar="LABEL", help="keep only rows with these labels")
    option("--max-chars", type=_positive_int, metavar="N",
           help="cut texts to N characters before tokenizing")
    option("--max-seq-length", type=_positive_int, metavar="N",
           help="token limit (default: the tokenizer's)")
    option("--batch-size", dest="model_inference_batch_size", type=_positive_int, metavar="N",
           help="rows per forward pass (default 256)")
    option("--max-batch-tokens", type=_batch_tokens, metavar="N|auto|none",
           help="padded tokens per forward pass (default auto: 2048 on CPU, no limit on GPU)")
    option("--padding-side", choices=PADDING_SIDES)
    option("--quantize", choices=[q for q in QUANTIZE if q], help="dynamic int8 on CPU (opt-in)")
    option("--engine", choices=ENGINES,
           help="inference engine (default auto: ONNX Runtime for a model folder that ships its "
                "exported graph, like the bundled one, else torch; onnx: export and run any "
                "model on ONNX Runtime, needs the [onnx] extra; openvino: the same graph on "
                "OpenVINO, needs the [openvino] extra)")
    fold = group.add_mutually_exclusive_group()
    fold.add_argument("--fold-duplicates", type=_fold_mode, metavar="{chunk,global}", default=unset,
                      help="classify each repeated text once per chunk of rows (chunk, the "
                           "default) or once in the whole job, across files (global: a hash "
                           "pass reads the inputs first)")
    fold.add_argument("--no-fold-duplicates", dest="fold_duplicates", action="store_false",
                      default=unset, help="classify every row, repeated or not")
    option("--trust-remote-code", action="store_true",
           help="allow a hub checkpoint's own code to run")
    option("--revision", help="hub model: branch, tag or commit")
    option("--token", metavar="HF_TOKEN",
           help="hub model: a Hugging Face token for gated or private models (for aegis and "
                "instruction-data-guard: their LlamaGuard-7b base); default: HF_TOKEN or the "
                "saved login")
    option("--local-files-only", action="store_true",
           help="hub model: use only the local Hugging Face cache")


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

    _add_classify(sub, debug)
    _add_train(sub, debug)
    _add_evaluate(sub, debug)
    _add_convert(sub, debug)
    _add_export(sub, debug)
    return parser


def _add_classify(sub: Any, debug: argparse.ArgumentParser) -> None:
    p = sub.add_parser("classify", parents=[debug], help="classify JSONL/Parquet/CSV/TSV files",
                       description="Classify the text column of files (local or any fsspec URL) "
                                   "and write them with the label (and score) columns added, one "
                                   "output folder per input. Reruns resume: only inputs, parts "
                                   "or options that changed are redone.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, folders (recursive) or globs; local paths or URLs (s3://...)")
    p.add_argument("--output", "-o", required=True, metavar="OUT",
                   help="output folder (local path or URL)")
    p.add_argument("--storage-options", type=_json_object, default=None, metavar="JSON",
                   help="fsspec options for remote inputs and output, e.g. "
                        "'{\"anon\": true}' or '{\"client_kwargs\": {\"endpoint_url\": ...}}'")
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
                   help="redo every input (default: skip what is done, redo what changed)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress report (default: a bar on a terminal, else a line per "
                        "10%% of the parts)")
    _classifier_options(p)
    _cluster_options(p)
    p.set_defaults(func=_cmd_classify)


def _add_train(sub: Any, debug: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[debug], help="fine-tune a classifier from TSV files",
                       description="Fine-tune a BERT-family encoder. The config is NeMo's "
                                   "text-classification YAML (NeMo 1.x files work as they are); "
                                   "overrides use Hydra's syntax: key=value, +key=value, ~key, "
                                   "lists as trainer.devices=[0,1]; NeMo's top-level optim.* "
                                   "is read as model.optim.*.")
    p.add_argument("--config", "-c", metavar="YAML", help="config file (default: the packaged one)")
    p.add_argument("--config-path", "-cp", metavar="DIR",
                   help="Hydra's spelling, with --config-name: the config is DIR/NAME.yaml")
    p.add_argument("--config-name", "-cn", metavar="NAME",
                   help="config file name in --config-path (.yaml may be left out)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides: key=value, +key=value, ~key")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    p.set_defaults(func=_cmd_train)


def _add_evaluate(sub: Any, debug: argparse.ArgumentParser) -> None:
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


def _add_convert(sub: Any, debug: argparse.ArgumentParser) -> None:
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


def _add_export(sub: Any, debug: argparse.ArgumentParser) -> None:
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


# --------------------------------------------------------------------------- classify
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

    kwargs = {name: getattr(args, name) for name in OPTION_NAMES if hasattr(args, name)}
    if args.classifier:
        cls = published(args.classifier)
        if "token" in kwargs:  # the LLM classifiers take their gated base model's token
            kwargs[cls.token_parameter] = kwargs.pop("token")
        return cls(model_identifier=args.model, **kwargs)
    model = args.model
    if model is None:
        model = default_model_dir()
        if not (model / "config.json").is_file():
            raise UsageError(f"no --model given and the bundled default model is missing "
                             f"({model})")
    return dask_classify.DistributedDataClassifier(model, **kwargs)


def _close_quietly(client: Any) -> None:
    """Close a client and the local cluster we started for it, without shutdown noise.

    Closing while tasks are being torn down makes distributed log ``CancelledError`` tracebacks
    at ERROR level although nothing went wrong; the job's own errors have been raised (and
    reported) before this point.
    """
    import logging

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        cluster = getattr(client, "cluster", None)
        try:  # worker processes log a failed heartbeat as the scheduler goes
            client.run(_silence_distributed_logs)
        except Exception:  # noqa: BLE001 - a worker already gone has nothing to say
            pass
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        quiet.setLevel(level)


def _silence_distributed_logs() -> None:
    """Raise this worker's ``distributed`` log level to CRITICAL (run just before shutdown)."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet_user_errors() -> None:
    """Keep our own workers from logging tracebacks when a task fails on the user's input.

    The error reaches the client, which prints it as one line; the worker's "Compute Failed"
    log with the traceback, and the "ended with CancelledError" warnings of the tasks still
    running when the cluster then closes, would only bury it. Other task failures (our bugs)
    are still logged. Run on the workers of clusters this command started (``client.run``).
    """
    import logging

    for name in ("distributed.worker", "distributed.worker.state_machine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorFilter) for f in logger.filters):
            logger.addFilter(_UserErrorFilter())


class _UserErrorFilter:
    NAMES = ("InputError(", "UsageError(", "CheckpointError(", "TextColumnError(")

    def filter(self, record: Any) -> bool:
        message = str(record.msg)
        if message.startswith("Compute Failed"):
            return not any(name in str(record.args) for name in self.NAMES)
        return not message.endswith("ended with CancelledError")


class _Clients:
    """Where ``classify`` runs: a scheduler it joins, a local cluster it starts only when the
    work is larger than one part, or this process (a small input starts in a second or two)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.client: Any = None
        self.owned = False

    def __call__(self, plan: Any) -> Any:
        from dask_classify import get_client

        args = self.args
        if args.scheduler_address or args.scheduler_file:
            self.client = get_client(args.scheduler_address, scheduler_file=args.scheduler_file)
        elif plan.tasks <= 1 and args.n_workers is None:
            return None  # one part: a cluster would only cost its start-up
        else:
            dashboard = (None if str(args.dashboard_address).lower() == "none"
                         else args.dashboard_address)
            self.client = get_client(backend=args.backend, n_workers=args.n_workers,
                                     threads_per_worker=args.threads_per_worker,
                                     reuse_existing=False, dashboard_address=dashboard)
            self.owned = True
            self.client.run(_quiet_user_errors)
            if self.client.dashboard_link and args.dashboard_address != "none":
                print(f"dashboard: {self.client.dashboard_link}", flush=True)
        return self.client

    def close(self) -> None:
        if self.client is None:
            return
        if self.owned:
            _close_quietly(self.client)
        else:
            self.client.close()


def _print_plan(summary: Any, plan: Any) -> None:
    shown = 10
    for url, reason in summary.redone[:shown]:
        print(f"redo {url} ({reason})")
    skipped = [url for url in summary.outputs if url not in dict(summary.redone)]
    if summary.lock_taken_over:
        print(f"took over the lock of a job that is gone ({summary.lock_taken_over})")
    for url in summary.resumed[:shown]:
        print(f"resume {url} (its parts written earlier are kept)")
    if summary.skipped:
        done = [u for u in skipped if u not in summary.resumed][: min(shown, summary.skipped)]
        if summary.skipped <= shown:
            for url in done:
                print(f"skip {url} (done: {summary.outputs[url]}; --overwrite to redo)")
        else:
            print(f"skip {summary.skipped} inputs already done (--overwrite to redo them)")
    if len(summary.redone) > shown:
        print(f"... and {len(summary.redone) - shown} more inputs redone")
    if plan.tasks == 0 and not plan.inputs:
        print("nothing to do")
    elif plan.tasks:
        print(f"classifying {plan.inputs} input(s) in {plan.tasks} part(s)", flush=True)


def _cmd_classify(args: argparse.Namespace) -> int:
    from dask_classify.jobs import classify_files

    clf = make_classifier(args)
    clients = _Clients(args)
    try:
        summary = classify_files(
            args.inputs, args.output, clf, clients, input_format=args.input_format,
            output_format=args.output_format, storage_options=args.storage_options,
            blocksize=args.blocksize, partition_rows=args.partition_rows,
            on_bad_lines=args.on_bad_lines, overwrite=args.overwrite,
            progress=not args.no_progress, on_start=_print_plan)
    finally:
        clients.close()
    if summary.tasks == 0:
        return 0
    for report in summary.bad_lines:
        print(report)
    written = [url for url in summary.outputs if url in summary.counts]
    for url in written[:10]:
        rows_in, rows_out = summary.counts[url]
        print(f"wrote {summary.outputs[url]} ({rows_out} of {rows_in} rows)")
    if len(written) > 10:
        print(f"... and {len(written) - 10} more outputs")
    skipped_lines = (f"  bad lines skipped: {summary.bad_lines_skipped}"
                     if args.on_bad_lines == "skip" else "")
    print(f"rows in: {summary.rows_in}  rows out: {summary.rows_out}  "
          f"null text: {summary.null_text}{skipped_lines}")
    if summary.distinct_texts is not None:
        print(f"distinct texts: {summary.distinct_texts} of "
              f"{summary.rows_in - summary.null_text} (global folding; table "
              f"{summary.table_bytes / 2**20:.1f} MiB)")
    print("labels: " + ", ".join(f"{k}={v}" for k, v in summary.labels.items()))
    print(f"{summary.docs_per_second} documents/s ({summary.seconds} s)")
    return 0


# --------------------------------------------------------------------------- train etc.
def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from dask_classify.train import load_config, train  # MissingExtraError without [train]

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dask_classify").setLevel(logging.INFO)
    cfg = load_config(_train_config_path(args), args.overrides)
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0
    result = train(cfg)
    from dask_classify.train.nemo import _is_secondary_rank

    if _is_secondary_rank():  # another DDP process of this run: rank 0 reports
        return 0
    if result.test_report:
        from dask_classify.train.metrics import format_report

        print(f"test set ({cfg.model.test_ds.file_path}):\n{format_report(result.test_report)}")
    print(f"best model: {result.best_model}")
    return 0


def _train_config_path(args: argparse.Namespace) -> str | None:
    """``--config``, or Hydra's ``--config-path DIR --config-name NAME`` (``DIR/NAME.yaml``)."""
    if args.config_name is None:
        if args.config_path is not None:
            raise UsageError("--config-path needs --config-name")
        return args.config
    if args.config is not None:
        raise UsageError("give --config or --config-name, not both")
    name = args.config_name if args.config_name.endswith((".yaml", ".yml")) else (
        args.config_name + ".yaml")
    return str(Path(args.config_path or ".") / name)


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
    from dask_classify.engine.onnx_export import EXPORT_INFO, export_onnx

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
