"""NeMo 1.x configs and command lines, the learning-rate default, the token cache, the start-of-run
report, and the encoder options of ``model.language_model``.

The NeMo config is the published ``text_classification_config.yaml`` (``tests/data/nemo``, see
``tests/data/SOURCES.md``), used unchanged. Training runs use a tiny BERT encoder built here (no
model hub) and real SST-2 rows.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("lightning")

from omegaconf import OmegaConf  # noqa: E402

from dask_classify import Deberta, DistributedDataClassifier  # noqa: E402
from dask_classify.cli import main  # noqa: E402
from dask_classify.engine.loading import load_model, save_checkpoint
from dask_classify.errors import CheckpointError  # noqa: E402
from dask_classify.testing import (  # noqa: E402
    build_tiny_encoder,
    build_tokenizer,
    default_corpus,
)
from dask_classify.tokenize import tokenize  # noqa: E402
from dask_classify.train import ConfigError, load_config, train  # noqa: E402
from dask_classify.train.data import read_tsv, write_tsv  # noqa: E402
from dask_classify.train.datamodule import (  # noqa: E402
    TextClassificationDataModule,
    TokenCache,
    load_training_tokenizer,
)
from dask_classify.train.encoder import build_encoder, load_encoder_weights  # noqa: E402
from dask_classify.train.module import auto_learning_rate, predict_probabilities  # noqa: E402
from dask_classify.train.nemo import ConfigWarning  # noqa: E402

NEMO_YAML = (Path(__file__).resolve().parents[1] / "data" / "nemo"
             / "text_classification_config.yaml")
NEMO_INFER_SAMPLES = [
    "by the end of no such thing the audience , like beatrice , has a watchful affection for "
    "the monster .",
    "director rob marshall went out gunning to make a great one .",
    "uneasy mishmash of styles and genres .",
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"), "bert", default_corpus(5000))


@pytest.fixture(scope="module")
def sst2_small(tmp_path_factory, data_dir) -> dict[str, Path]:
    """200 SST-2 training rows and 101 dev rows, as NeMo-format TSV files."""
    folder = tmp_path_factory.mktemp("sst2_small")
    train_frame = read_tsv(data_dir / "sst2" / "train.tsv", num_classes=2).iloc[:200]
    dev_frame = read_tsv(data_dir / "sst2" / "dev.tsv", num_classes=2).iloc[:101]
    out = {"train": folder / "train.tsv", "dev": folder / "dev.tsv"}
    write_tsv(out["train"], train_frame["sentence"], train_frame["label"])
    write_tsv(out["dev"], dev_frame["sentence"], dev_frame["label"])
    return out


def _load(*overrides: str, path: Path | None = None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(path, list(overrides))
    return cfg, [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]


# ------------------------------------------------------------------------ NeMo's config file
@pytest.mark.slow
def test_nemo_config_trains_with_only_data_paths_and_num_classes(encoder, sst2_small, tmp_path,
                                                                monkeypatch, caplog):
    """NeMo's published YAML, unchanged. Besides the data paths and num_classes the command
    line names the encoder (bert-base-uncased would need the model hub) and 2 epochs instead of
    NeMo's 100 (time); every other value is NeMo's, including lr 2e-5, the adam optimizer, the
    2-layer ReLU head, 3 loader workers, the TensorBoard logger, nemo_path and infer_samples."""
    monkeypatch.chdir(tmp_path)  # NeMo's nemo_path and exp_dir: null are relative to it
    caplog.set_level(logging.INFO, logger="dask_classify")
    overrides = [f"model.train_ds.file_path={sst2_small['train']}",
                 f"model.validation_ds.file_path={sst2_small['dev']}",
                 "model.dataset.num_classes=2",
                 f"model.language_model.pretrained_model_name={encoder}",
                 "trainer.max_epochs=2"]
    with pytest.warns(ConfigWarning) as record:
        result = train(NEMO_YAML, overrides)
    messages = [str(w.message) for w in record if issubclass(w.category, ConfigWarning)]
    # Exactly the two things this CPU machine cannot do as the file asks: a GPU, TensorBoard.
    assert len(messages) == 2, messages
    assert any("trainer.gpus=1" in m and "CPU" in m for m in messages)
    assert any("create_tensorboard_logger" in m and "tensorboard" in m for m in messages)

    cfg = result.config
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "32-true"
    assert cfg.model.optim.name == "adam" and result.learning_rate == pytest.approx(2e-5)
    assert cfg.model.dataset.num_workers == 3 and cfg.model.train_ds.num_workers == 3
    # exp_dir: null + exp_manager.name -> <default exp_dir>/TextClassification
    exp = tmp_path / "dask_classify_experiments" / "TextClassification"
    assert result.exp_dir.resolve() == exp.resolve()
    assert (exp / "best_model" / "model.safetensors").is_file()
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert result.val_report["num_samples"] == 101

    # model.nemo_path -> a checkpoint folder named after it, which the classifier loads.
    exported = tmp_path / "text_classification_model"
    assert result.exported_model.resolve() == exported.resolve()
    config = json.loads((exported / "config.json").read_text())
    assert config["num_output_layers"] == 2 and config["head_activation"] == "relu"
    texts = NEMO_INFER_SAMPLES
    expected = predict_probabilities(result.model, result.tokenizer, texts, 256)
    out = DistributedDataClassifier(exported, score_field="p")(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(np.stack(out["p"].to_numpy()), expected, atol=1e-5)

    # model.infer_samples: printed with their predicted labels after training.
    assert [s["text"] for s in result.inferred] == NEMO_INFER_SAMPLES
    assert [s["label"] for s in result.inferred] == [str(i) for i in expected.argmax(1)]
    log = caplog.text
    for text in NEMO_INFER_SAMPLES:
        assert f"infer_samples: {text!r} -> " in log
    # The start-of-run report.
    assert "config:\n" in log and "pretrained_model_name:" in log
    assert "devices: cpu, 1 process(es)" in log
    assert "example 0 of train_ds" in log and "[CLS]" in log
    assert "train_ds: 200 examples, tokens min" in log
    assert "validation_ds: 101 examples" in log


@pytest.mark.gpu
@pytest.mark.slow
def test_nemo_config_on_a_gpu_with_amp(encoder, sst2_small, tmp_path, monkeypatch):
    """On a GPU machine NeMo's gpus: 1 is a GPU, and precision 16 with amp_level O1 is AMP."""
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)  # tensorboard may be missing
        result = train(NEMO_YAML, [f"model.train_ds.file_path={sst2_small['train']}",
                                   f"model.validation_ds.file_path={sst2_small['dev']}",
                                   "model.dataset.num_classes=2",
                                   f"model.language_model.pretrained_model_name={encoder}",
                                   "trainer.max_epochs=1", "trainer.precision=16",
                                   "trainer.amp_level=O1"])
    t = result.config.trainer
    assert (t.accelerator, t.devices, t.precision) == ("gpu", 1, "16-mixed")
    texts = NEMO_INFER_SAMPLES
    expected = predict_probabilities(result.model, result.tokenizer, texts, 256)
    # fp32 on the CPU: GPU hosts have AMX, where device="cpu" would otherwise run bf16 autocast
    out = DistributedDataClassifier(result.exported_model, score_field="p", device="cpu",
                                    autocast=False)(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(np.stack(out["p"].to_numpy()), expected, atol=1e-5)


def test_nemo_config_loads_and_maps_its_keys():
    import torch

    cfg, warned = _load("model.dataset.num_classes=2", path=NEMO_YAML)
    t = cfg.trainer
    if torch.cuda.is_available():  # gpus: 1 is that GPU
        assert warned == [] and (t.accelerator, t.devices) == ("gpu", 1)
    else:  # gpus: 1 without a GPU -> one CPU process; accelerator: ddp then needs no DDP.
        assert len(warned) == 1 and "trainer.gpus=1" in warned[0]
        assert (t.accelerator, t.devices, t.strategy, t.precision) == ("cpu", 1, "auto",
                                                                      "32-true")
    assert t.max_steps == -1 and t.max_epochs == 100 and t.log_every_n_steps == 1
    for gone in ("gpus", "amp_level", "checkpoint_callback", "logger", "resume_from_checkpoint"):
        assert gone not in t
    assert cfg.model.tokenizer.tokenizer_name == "bert-base-uncased"  # interpolation resolved
    assert cfg.model.nemo_path == "text_classification_model.nemo"
    assert cfg.model.infer_samples == NEMO_INFER_SAMPLES
    assert cfg.model.optim.lr == pytest.approx(2e-5)  # NeMo's value is kept when it is set
    assert cfg.exp_manager.exp_dir is None and cfg.exp_manager.name == "TextClassification"


@pytest.mark.parametrize("overrides, expected", [
    (["trainer.gpus=0"], {"accelerator": "cpu", "devices": 1}),
    (["trainer.gpus=0", "trainer.accelerator=ddp"], {"accelerator": "cpu", "strategy": "ddp"}),
    (["trainer.accelerator=ddp_cpu", "trainer.num_processes=2"],
     {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}),
    (["trainer.distributed_backend=ddp_spawn"], {"strategy": "ddp_spawn"}),
    (["trainer.precision=16", "trainer.amp_level=O1"], {"precision": "16-mixed"}),
    (["trainer.precision=16", "trainer.amp_level=O3"], {"precision": "16-true"}),
    (["trainer.precision=64"], {"precision": "64-true"}),
    (["trainer.max_steps=null"], {"max_steps": -1}),
    (["trainer.checkpoint_callback=false", "trainer.logger=false",
      "trainer.enable_checkpointing=false"], {}),
    (["trainer.progress_bar_refresh_rate=0", "trainer.weights_summary=null"],
     {"enable_progress_bar": False, "enable_model_summary": False}),
    (["trainer.replace_sampler_ddp=false"], {"use_distributed_sampler": False}),
])
def test_lightning1_trainer_keys_are_translated(overrides, expected):
    cfg, warned = _load(*overrides)
    assert warned == []
    for key, value in expected.items():
        assert cfg.trainer[key] == value, key
    for key in ("gpus", "amp_level", "checkpoint_callback", "logger", "num_processes",
                "distributed_backend", "progress_bar_refresh_rate", "weights_summary"):
        assert key not in cfg.trainer


def test_gpus_without_a_gpu_falls_back_to_one_cpu_process():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg, warned = _load("trainer.gpus=[0,1]", "trainer.accelerator=ddp")
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == (
        "cpu", 1, "auto")
    assert len(warned) == 1 and "trainer.gpus=[0, 1]" in warned[0]


def test_precision_16_on_a_cpu_and_accelerator_gpu_without_one(caplog):
    from dask_classify.train.trainer import _trainer_kwargs

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg, _ = _load("trainer.precision=16", "trainer.amp_level=O1", "trainer.accelerator=cpu")
    assert _trainer_kwargs(cfg)["precision"] == "32-true"  # Lightning has no fp16 AMP on CPUs
    assert "not available on a CPU" in caplog.text
    cfg, _ = _load("trainer.accelerator=gpu")
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu, but this machine has no"):
        _trainer_kwargs(cfg)


def test_keys_with_no_meaning_warn_once_naming_the_key(tmp_path):
    yaml = tmp_path / "conf.yaml"
    yaml.write_text("model:\n  tokenizer:\n    special_tokens: {sep_token: '[SEP]'}\n"
                    "exp_manager:\n  version: run7\n"
                    "hydra:\n  run:\n    dir: outputs/today\n", encoding="utf-8")
    cfg, warned = _load("model.tokenizer.special_tokens={sep_token: '[SEP]'}",
                        "trainer.amp_level=O2", "trainer.terminate_on_nan=true", path=yaml)
    assert sum("model.tokenizer.special_tokens" in m for m in warned) == 1  # once, not twice
    for key in ("exp_manager.version", "hydra", "trainer.amp_level=O2",
                "trainer.terminate_on_nan"):
        assert sum(key in m for m in warned) == 1, (key, warned)
    assert len(warned) == 5
    assert cfg.model.tokenizer.special_tokens is None  # ignored, as the warning says
    # NeMo's own hydra section and null-valued NeMo keys pass silently.
    yaml.write_text("hydra:\n  run:\n    dir: .\n  job_logging:\n    root:\n      handlers: null\n"
                    "model:\n  tokenizer:\n    vocab_file: null\n", encoding="utf-8")
    assert _load(path=yaml)[1] == []


def test_nemo_documented_command_line(caplog, tmp_path):
    """NeMo's docs train with ``optim.name=adam optim.lr=0.0001`` at the top level and
    ``model.training_ds.file_path``; both are read as what they meant, with a note."""
    caplog.set_level(logging.INFO, logger="dask_classify")
    cfg, warned = _load(f"model.training_ds.file_path={tmp_path / 'train.tsv'}",
                        f"model.validation_ds.file_path={tmp_path / 'dev.tsv'}",
                        "trainer.max_epochs=50", "trainer.gpus=0", "optim.name=adam",
                        "optim.lr=0.0001", "model.nemo_path=out.nemo")
    assert warned == []
    assert cfg.model.optim.name == "adam" and cfg.model.optim.lr == pytest.approx(1e-4)
    assert cfg.model.train_ds.file_path == str(tmp_path / "train.tsv")
    assert "optim.name, optim.lr read as model.optim.*" in caplog.text
    assert "model.training_ds" in caplog.text


def test_other_nemo_mappings(tmp_path):
    labels = tmp_path / "labels.txt"
    cfg, _ = _load(f"model.class_labels.class_labels_file={labels}",
                   "trainer.resume_from_checkpoint=last.ckpt", "exp_manager.explicit_log_dir=o")
    assert cfg.model.dataset.labels_file == str(labels)
    assert cfg.exp_manager.resume_from_checkpoint == "last.ckpt"
    assert cfg.exp_manager.exp_dir == "o" and cfg.exp_manager.name is None
    cfg, _ = _load("exp_manager=null")
    em = cfg.exp_manager
    assert not (em.create_checkpoint_callback or em.create_csv_logger
                or em.create_tensorboard_logger)
    with pytest.raises(ConfigError, match="exp_manager.create_checkpoint_callback"):
        load_config(overrides=["trainer.checkpoint_callback=true"])


def test_hydra_override_syntax(tmp_path):
    cfg, _ = _load("+trainer.fast_dev_run=true", "++model.optim.lr=3e-4",
                   "trainer.devices=[0,1]", "~trainer.max_epochs", path=NEMO_YAML)
    assert cfg.trainer.fast_dev_run is True and cfg.model.optim.lr == pytest.approx(3e-4)
    assert list(cfg.trainer.devices) == [0, 1]
    assert cfg.trainer.max_epochs == 3  # NeMo's 100 deleted: back to the packaged default
    cfg, _ = _load("+trainer.fast_dev_run=true", "~trainer.fast_dev_run")
    assert "fast_dev_run" not in cfg.trainer  # an extra Lightning argument: gone again
    cfg, _ = _load("model.optim.lr=1e-3", "~model.optim.lr=0.001")
    assert cfg.model.optim.lr is None  # ~key=value deletes when the value matches
    with pytest.raises(ConfigError, match=r"~model\.optim\.lr=0\.5: model\.optim\.lr is"):
        load_config(overrides=["model.optim.lr=1e-3", "~model.optim.lr=0.5"])
    # A misspelt key is an error naming the closest valid key, with or without + / ~.
    with pytest.raises(ConfigError, match=r"did you mean 'model\.classifier_head\.activation'"):
        load_config(overrides=["+model.classifier_head.activaton=relu"])
    with pytest.raises(ConfigError, match=r"did you mean 'model\.dataset\.use_cache'"):
        load_config(overrides=["~model.dataset.use_cach"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(overrides=["+trainer.max_epochs"])


def test_cli_accepts_nemo_config_and_hydra_overrides(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)  # trainer.gpus: 1 on a CPU machine
        assert main(["train", "--config-path", str(NEMO_YAML.parent), "--config-name",
                     "text_classification_config", "--print-config",
                     "model.dataset.num_classes=4", "optim.lr=1e-4", "~trainer.max_epochs",
                     "+trainer.fast_dev_run=true"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.model.dataset.num_classes == 4 and printed.model.optim.lr == 1e-4
    assert printed.trainer.max_epochs == 3 and printed.trainer.fast_dev_run is True
    assert main(["train", "--print-config", "+model.classifier_head.activaton=relu"]) == 2
    assert "did you mean 'model.classifier_head.activation'" in capsys.readouterr().err


# ------------------------------------------------------------------------ defaults
def test_default_head_and_learning_rate(encoder, sst2_small, tmp_path, caplog):
    """With no learning rate given, the rate is chosen for the encoder and the run length; the
    start-of-run report counts the examples max_seq_length truncates, and warns."""
    caplog.set_level(logging.INFO, logger="dask_classify")
    result = train(None, [f"model.language_model.pretrained_model_name={encoder}",
                          f"model.train_ds.file_path={sst2_small['train']}",
                          "model.train_ds.num_samples=96", "model.train_ds.batch_size=16",
                          "model.dataset.max_seq_length=8", "trainer.max_epochs=1",
                          "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
                          f"exp_manager.exp_dir={tmp_path / 'exp'}",
                          "exp_manager.create_checkpoint_callback=false"])
    assert result.optimizer_steps == 6  # 96 rows / 16, one epoch
    assert result.learning_rate == pytest.approx(auto_learning_rate(64, 6))
    assert f"model.optim.lr: null -> {result.learning_rate:.3g}" in caplog.text
    config = json.loads((result.best_model / "config.json").read_text())
    assert config["num_output_layers"] == 2 and config["head_activation"] == "relu"
    assert isinstance(result.model.mlp[1], torch.nn.ReLU)
    # Truncation statistics: exactly the rows whose full tokenization is longer than 8.
    texts = read_tsv(sst2_small["train"], num_classes=2)["sentence"].tolist()[:96]
    full = result.tokenizer(texts)["input_ids"]
    stats = result.data_stats["train_ds"]
    assert stats["truncated"] == sum(len(ids) > 8 for ids in full) > 48
    assert stats["max"] == 8 and stats["count"] == 96
    assert "model.dataset.max_seq_length=8 truncates" in caplog.text
    assert json.loads((result.exp_dir / "train_result.json").read_text())[
        "data_stats"]["train_ds"]["truncated"] == stats["truncated"]


def test_auto_learning_rate_rule():
    assert auto_learning_rate(384, 100_000) == pytest.approx(1e-4)  # long runs: the base rate
    assert auto_learning_rate(768, 100_000) == pytest.approx(5e-5)  # twice as wide: half
    # Fewer steps: a larger rate, at most twice the base (the sweep's best at 32 and 94 steps).
    rates = [auto_learning_rate(384, steps) for steps in (4000, 1000, 500, 250, 94, 32, 1)]
    assert rates == sorted(rates) and rates[0] == rates[1] == pytest.approx(1e-4)
    assert 1e-4 < rates[2] < 2e-4 and rates[3:] == pytest.approx([2e-4] * 4)


@pytest.mark.parametrize("activation, module", [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh),
                                                ("gelu", torch.nn.GELU), (None, torch.nn.GELU)])
def test_head_activation_is_saved_and_loaded(tmp_path, encoder, activation, module):
    tok = load_training_tokenizer(encoder, 32)
    kwargs = {} if activation is None else {"head_activation": activation}
    model = Deberta.from_backbone(encoder, {0: "a", 1: "b"}, num_output_layers=3, **kwargs)
    if activation is None:  # a checkpoint written before head_activation existed: GELU
        model.config.pop("head_activation")
    folder = save_checkpoint(model, tok, tmp_path / "ckpt")
    loaded, _ = load_model(folder)
    assert [type(m) for m in loaded.mlp if not isinstance(m, (torch.nn.Linear,
                                                               torch.nn.Dropout))] == [module] * 2
    ids = torch.tensor([[2, 7, 9, 3]])
    mask = torch.ones_like(ids)
    model.eval()
    torch.testing.assert_close(loaded(ids, mask), model(ids, mask))


def test_unknown_head_activation_is_an_error(tmp_path, encoder):
    with pytest.raises(ConfigError, match="model.classifier_head.activation"):
        load_config(overrides=["model.classifier_head.activation=swish"])
    model = Deberta.from_backbone(encoder, {0: "a", 1: "b"}, num_output_layers=2)
    config = dict(model.config, head_activation="swish")
    with pytest.raises(CheckpointError, match="head_activation"):
        Deberta(config)


# ------------------------------------------------------------------------ token cache
def _datamodule(train_file: Path, tokenizer, *extra: str) -> TextClassificationDataModule:
    cfg = load_config(overrides=[f"model.train_ds.file_path={train_file}",
                                 "model.dataset.use_cache=true", *extra])
    return TextClassificationDataModule(cfg.model, tokenizer).load()


def test_use_cache_serves_the_second_run_and_only_for_the_same_inputs(tmp_path, encoder,
                                                                      sst2_small):
    train_file = tmp_path / "train.tsv"
    train_file.write_bytes(sst2_small["train"].read_bytes())
    tok = load_training_tokenizer(encoder, 64)
    first = _datamodule(train_file, tok)
    assert first.from_cache == {"train_ds": False}
    caches = list(tmp_path.glob("train.tsv.dask_classify-tokens-*.npz"))
    assert len(caches) == 1  # next to the TSV
    texts = first.frames["train_ds"]["sentence"].tolist()
    assert first.datasets["train_ds"].input_ids == tokenize(tok, texts, 256)

    second = _datamodule(train_file, tok)
    assert second.from_cache == {"train_ds": True}
    assert second.datasets["train_ds"].input_ids == first.datasets["train_ds"].input_ids
    assert second.stats == first.stats
    # Served from the file: ids written into the cache are what the next run trains on.
    tampered = [[*row[:-1], 7, row[-1]] for row in first.datasets["train_ds"].input_ids]
    TokenCache(train_file, tok, 256, rows=200).save(tampered, np.zeros(200, dtype=bool))
    assert _datamodule(train_file, tok).datasets["train_ds"].input_ids == tampered

    # Another tokenizer (another vocabulary), max_seq_length or row count does not get these
    # tokens.
    other = build_tokenizer(tmp_path / "other_tok", "bert", default_corpus(300))
    assert _datamodule(train_file, other).from_cache == {"train_ds": False}
    assert _datamodule(train_file, tok, "model.dataset.max_seq_length=32").from_cache == {
        "train_ds": False}
    assert _datamodule(train_file, tok, "model.train_ds.num_samples=50").from_cache == {
        "train_ds": False}
    # An edited file is tokenized afresh, and its cache rewritten.
    with open(train_file, "a", encoding="utf-8") as fh:
        fh.write("a brand new sentence\t1\n")
    changed = _datamodule(train_file, tok)
    assert changed.from_cache == {"train_ds": False} and len(changed.datasets["train_ds"]) == 201
    assert changed.datasets["train_ds"].input_ids[:200] == first.datasets["train_ds"].input_ids
    assert _datamodule(train_file, tok).from_cache == {"train_ds": True}


def test_use_cache_in_a_read_only_folder_still_trains(tmp_path, encoder, sst2_small, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    train_file = folder / "train.tsv"
    train_file.write_bytes(sst2_small["train"].read_bytes())
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("running as a user who may write anywhere")
        dm = _datamodule(train_file, load_training_tokenizer(encoder, 64))
        assert len(dm.datasets["train_ds"]) == 200
        assert "could not write the token cache" in caplog.text
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------------ language_model
def test_lm_checkpoint_and_config_file(tmp_path, encoder):
    tok = load_training_tokenizer(encoder, 32)
    trained = Deberta.from_backbone(encoder, {0: "a", 1: "b"})
    with torch.no_grad():
        for p in trained.model.parameters():
            p.add_(0.5)
    folder = save_checkpoint(trained, tok, tmp_path / "ckpt")  # weights "model.*" + "fc.*"
    built = build_encoder({"pretrained_model_name": str(encoder),
                           "lm_checkpoint": str(folder / "model.safetensors")})
    for name, value in built.state_dict().items():
        torch.testing.assert_close(value, trained.model.state_dict()[name])

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(json.loads((Path(encoder) / "config.json").read_text())))
    random_init = build_encoder({"pretrained_model_name": str(encoder),
                                 "config_file": str(config_file)})
    pretrained = build_encoder({"pretrained_model_name": str(encoder)})
    assert type(random_init) is type(pretrained)
    assert not torch.equal(random_init.embeddings.word_embeddings.weight,
                           pretrained.embeddings.word_embeddings.weight)  # NeMo: random weights

    with pytest.raises(ConfigError, match=r"\.nemo archive"):
        nemo = tmp_path / "model.nemo"
        nemo.write_bytes(b"x")
        load_encoder_weights(pretrained, nemo)
    other = tmp_path / "other.pt"
    torch.save({"something.else": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match="0 of the encoder's"):
        load_encoder_weights(pretrained, other)
    with pytest.raises(ConfigError, match="is not a file"):
        build_encoder({"pretrained_model_name": str(encoder),
                       "lm_checkpoint": str(tmp_path / "missing.pt")})
