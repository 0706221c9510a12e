"""Training and evaluation on real SST-2 rows with a tiny BERT encoder (hidden 64, 2 layers).

Every run trains for real (Lightning on the CPU, a few hundred rows); the exported
``best_model`` is loaded by :class:`~dask_classify.DistributedDataClassifier` and compared with
the model in memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lightning")
pytest.importorskip("torchmetrics")

import dask.dataframe as dd  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from dask_classify import DistributedDataClassifier  # noqa: E402
from dask_classify.engine.loading import load_model, load_tokenizer
from dask_classify.engine.model import Deberta
from dask_classify.testing import build_tiny_encoder, build_tokenizer, default_corpus  # noqa: E402
from dask_classify.train import ConfigError, evaluate, load_config, train  # noqa: E402
from dask_classify.train.config import default_config  # noqa: E402
from dask_classify.train.data import DataFormatError, read_tsv, write_tsv  # noqa: E402
from dask_classify.train.datamodule import (  # noqa: E402
    LengthGroupedSampler,
    TextClassificationDataModule,
    class_weights,
    load_training_tokenizer,
)
from dask_classify.train.metrics import classification_report, format_report  # noqa: E402
from dask_classify.train.module import (  # noqa: E402
    TextClassificationModule,
    predict_probabilities,
)
from dask_classify.train.trainer import _trainer_kwargs  # noqa: E402

MAX_LEN = 64


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, data_dir) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"), "bert", default_corpus(5000))


@pytest.fixture(scope="module")
def sst2(data_dir) -> dict[str, Path]:
    return {"train": data_dir / "sst2" / "train.tsv", "dev": data_dir / "sst2" / "dev.tsv"}


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("negative\npositive\n", encoding="utf-8")
    return path


def _overrides(encoder: Path, train_file: Path, exp_dir: Path, *extra: str) -> list[str]:
    return [
        f"model.language_model.pretrained_model_name={encoder}",
        f"model.train_ds.file_path={train_file}",
        f"exp_manager.exp_dir={exp_dir}",
        f"model.dataset.max_seq_length={MAX_LEN}",
        "model.dataset.num_classes=2",
        "model.train_ds.batch_size=16",
        "model.optim.lr=2e-3",  # a tiny random encoder needs a high rate to learn fast
        # A linear head learns fastest on a tiny random encoder; the default 2-layer head is
        # trained in test_num_output_layers_2_round_trips and the NeMo-config tests.
        "model.classifier_head.num_output_layers=1",
        "model.optim.sched.warmup_ratio=0.0",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=5",
        "seed=7",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(encoder, sst2, labels_file, tmp_path_factory):
    """Four epochs on the first 320 SST-2 train rows, validated on 200 dev rows."""
    exp_dir = tmp_path_factory.mktemp("exp_main")
    return train(None, _overrides(
        encoder, sst2["train"], exp_dir,
        f"model.validation_ds.file_path={sst2['dev']}",
        "model.validation_ds.num_samples=200",
        "model.train_ds.num_samples=320",
        f"model.dataset.labels_file={labels_file}",
        "trainer.max_epochs=4",
    ))


@pytest.fixture(scope="module")
def dev_frame(sst2) -> pd.DataFrame:
    return read_tsv(sst2["dev"], num_classes=2)


def _write(path: Path, rows: list[tuple[str, int]]) -> Path:
    write_tsv(path, [s for s, _ in rows], [lab for _, lab in rows])
    return path


# ------------------------------------------------------------------------------ config
def test_default_config_is_nemo_shaped():
    cfg = default_config()
    for key in ("trainer", "model", "exp_manager", "seed"):
        assert key in cfg
    for key in ("language_model", "dataset", "classifier_head", "train_ds", "validation_ds",
                "test_ds", "optim"):
        assert key in cfg.model
    assert cfg.trainer.precision == "32-true"  # never bf16 by default (slow on most CPUs)
    assert cfg.model.dataset.class_balancing is None


def test_unknown_config_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"'model\.datset'.*did you mean 'model\.dataset'"):
        load_config(overrides=["model.datset.num_classes=3"])
    yaml = tmp_path / "conf.yaml"
    yaml.write_text("model:\n  train_ds:\n    batch_sise: 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'model\.train_ds\.batch_sise'.*conf\.yaml"):
        load_config(yaml)
    with pytest.raises(ConfigError, match=r"'trainer\.max_epoch'.*max_epochs"):
        load_config(overrides=["trainer.max_epoch=2"])
    with pytest.raises(ConfigError, match=r"'trainer\.callbacks'.*exp_manager"):
        load_config(overrides=["trainer.callbacks=[]"])
    # Any other lightning.Trainer argument is accepted in the trainer section.
    cfg = load_config(overrides=["trainer.gradient_clip_algorithm=value"])
    assert cfg.trainer.gradient_clip_algorithm == "value"
    with pytest.raises(Exception, match="foo"):
        cfg.model.foo  # noqa: B018 - struct mode: reading an unknown key raises too


def test_config_values_are_validated():
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["model.dataset.num_classes=1", "model.optim.lr=0",
                               "model.dataset.class_balancing=balanced",
                               "model.train_ds.num_samples=0",
                               "model.classifier_head.fc_dropout=1.5"])
    message = str(err.value)
    for key in ("num_classes", "optim.lr", "class_balancing", "train_ds.num_samples",
                "fc_dropout"):
        assert f"model.{key}" in message or key in message
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(overrides=["no_equals_sign"])
    with pytest.raises(ConfigError, match="pretrained_model_name: required"):
        train(None, ["model.train_ds.file_path=x.tsv"])


def test_bf16_on_a_cpu_without_amx_falls_back_to_fp32(monkeypatch):
    import dask_classify.backend as backend

    monkeypatch.setattr(backend, "cpu_has_native_bf16", lambda: False)
    cfg = load_config(overrides=["trainer.precision=bf16-mixed", "trainer.accelerator=cpu"])
    assert _trainer_kwargs(cfg)["precision"] == "32-true"
    monkeypatch.setattr(backend, "cpu_has_native_bf16", lambda: True)
    assert _trainer_kwargs(cfg)["precision"] == "bf16-mixed"


# ------------------------------------------------------------------------------ data
def test_num_samples_limits_rows(encoder, sst2):
    tok = load_training_tokenizer(encoder, MAX_LEN)
    for limit, expected in ((50, 50), (-1, 4000), (None, 4000)):
        value = "null" if limit is None else limit
        cfg = load_config(overrides=[f"model.train_ds.file_path={sst2['train']}",
                                     f"model.train_ds.num_samples={value}",
                                     f"model.validation_ds.file_path={sst2['dev']}",
                                     "model.validation_ds.num_samples=10"])
        dm = TextClassificationDataModule(cfg.model, tok)
        frames = dm.read()
        assert len(frames["train_ds"]) == expected
        assert len(frames["validation_ds"]) == 10
        assert dm.num_classes == 2  # inferred: num_classes is null
    dm = TextClassificationDataModule(cfg.model.copy(), tok)
    dm.cfg.train_ds.num_samples = 50
    dm.load()
    assert len(dm.datasets["train_ds"]) == 50
    assert max(len(ids) for ids in dm.datasets["train_ds"].input_ids) <= MAX_LEN
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())  # clipped


def test_class_weights_for_an_imbalanced_file(tmp_path, encoder):
    rows = [(f"sentence {i}", 0) for i in range(30)] + [(f"other {i}", 1) for i in range(10)]
    path = _write(tmp_path / "imbalanced.tsv", rows)
    assert class_weights([0] * 30 + [1] * 10, 2) == pytest.approx([40 / 60, 40 / 20])
    assert class_weights([0, 0, 2], 3) == pytest.approx([3 / 6, 0.0, 3 / 3])  # absent class: 0
    cfg = load_config(overrides=[f"model.train_ds.file_path={path}",
                                 "model.dataset.class_balancing=weighted_loss"])
    dm = TextClassificationDataModule(cfg.model, load_training_tokenizer(encoder, MAX_LEN))
    weights = dm.class_weights()
    assert weights == pytest.approx([2 / 3, 2.0])
    # The module's training loss uses them.
    model = Deberta.from_backbone(encoder, {0: "a", 1: "b"}, fc_dropout=0.0)
    module = TextClassificationModule(model, dict(cfg.model.optim), class_weights=weights,
                                      print_reports=False)
    module.log = lambda *a, **k: None  # no trainer attached
    model.eval()  # no dropout, so both losses see the same logits
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        loss = module.training_step(batch, 0)
        logits = model.logits(batch["input_ids"], batch["attention_mask"])
    expected = F.cross_entropy(logits, batch["labels"], weight=torch.tensor(weights))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss) != pytest.approx(float(F.cross_entropy(logits, batch["labels"])),
                                        rel=1e-3)


def test_length_grouped_sampler_is_a_permutation_with_short_batches():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    torch.manual_seed(0)
    order = list(LengthGroupedSampler(lengths, batch_size=32))
    assert sorted(order) == list(range(1000))
    padded = sum(lengths[order[i:i + 32]].max() * len(order[i:i + 32])
                 for i in range(0, 1000, 32))
    assert padded < 1.3 * lengths.sum()
    torch.manual_seed(0)
    assert list(LengthGroupedSampler(lengths, batch_size=32)) == order  # seeded: reproducible


def test_do_lower_case_is_saved_with_the_tokenizer(tmp_path):
    pytest.importorskip("sentencepiece")
    from transformers import AutoTokenizer

    build_tokenizer(tmp_path / "cased", "deberta", ["The Movie was Great", "a Dull film"] * 50,
                    vocab_size=100)
    cased = load_training_tokenizer(tmp_path / "cased", MAX_LEN)
    assert cased("Great")["input_ids"] != cased("great")["input_ids"]
    lower = load_training_tokenizer(tmp_path / "cased", MAX_LEN, do_lower_case=True)
    lower.save_pretrained(str(tmp_path / "saved"))
    again = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    assert again("Great Movie")["input_ids"] == again("great movie")["input_ids"]


def test_bad_data_file_fails_before_training(tmp_path, encoder, sst2):
    bad = tmp_path / "test.tsv"
    bad.write_text("sentence\tlabel\na good film\t1\nno tab on this line\na bad film\t7\n",
                   encoding="utf-8")
    exp_dir = tmp_path / "exp"
    with pytest.raises(DataFormatError) as err:
        train(None, _overrides(encoder, sst2["train"], exp_dir,
                               "model.train_ds.num_samples=64", f"model.test_ds.file_path={bad}"))
    message = str(err.value)
    assert f"{bad}:3: missing tab" in message
    assert f"{bad}:4: label 7 out of range" in message
    assert not (exp_dir / "checkpoints").exists() and not (exp_dir / "best_model").exists()


# ------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_training_lowers_the_loss(trained):
    losses = [row["train_loss"] for row in trained.history]
    assert [row["epoch"] for row in trained.history] == [0, 1, 2, 3]
    assert losses[-1] < 0.6 * losses[0], losses
    assert trained.monitor == "val_f1_macro"
    assert trained.best_score == pytest.approx(
        max(row["val_f1_macro"] for row in trained.history))
    assert trained.val_report["labels"] == ["negative", "positive"]
    assert trained.val_report["num_samples"] == 200
    table = format_report(trained.val_report)
    assert "negative (label_id: 0)" in table and "weighted avg" in table


@pytest.mark.slow
def test_output_folder_layout(trained):
    exp = trained.exp_dir
    assert (exp / "config.yaml").is_file()
    assert json.loads((exp / "train_result.json").read_text())["best_epoch"] == trained.best_epoch
    assert (exp / "checkpoints" / "last.ckpt").is_file()
    assert Path(trained.best_checkpoint).is_file()
    csv = pd.read_csv(next((exp / "logs").glob("version_*/metrics.csv")))
    assert {"train_loss_epoch", "val_loss", "val_f1_macro", "val_precision_weighted",
            "val_recall_class_1"} <= set(csv.columns)
    assert not list(exp.glob(".best_model*"))  # no temporary export folders left behind
    config = json.loads((trained.best_model / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    assert config["base_model"] and config["fc_dropout"] == pytest.approx(0.1)
    keys = set(load_file(str(trained.best_model / "model.safetensors")))
    assert {"fc.weight", "fc.bias"} <= keys and all(
        k.startswith(("model.", "fc.", "mlp.")) for k in keys)
    assert load_tokenizer(trained.best_model).model_max_length == 512


@pytest.mark.slow
def test_best_model_classifies_like_the_model_in_memory(trained, dev_frame):
    texts = dev_frame["sentence"].tolist()[200:500]  # not the validation rows
    expected = predict_probabilities(trained.model, trained.tokenizer, texts, MAX_LEN)
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    clf = DistributedDataClassifier(trained.best_model, label_field="label", score_field="probs",
                                    max_seq_length=MAX_LEN)
    out = clf(ddf).compute()
    names = np.array(["negative", "positive"])
    assert out["label"].tolist() == names[expected.argmax(1)].tolist()
    np.testing.assert_allclose(np.stack(out["probs"].to_numpy()), expected, atol=1e-5)
    assert len(set(out["label"])) == 2  # a trained model, not a constant


@pytest.mark.slow
def test_num_output_layers_2_round_trips(encoder, sst2, tmp_path, dev_frame):
    result = train(None, _overrides(encoder, sst2["train"], tmp_path / "exp",
                                    "model.train_ds.num_samples=96", "trainer.max_epochs=1",
                                    "model.classifier_head.num_output_layers=2",
                                    f"model.test_ds.file_path={sst2['dev']}",
                                    "model.test_ds.num_samples=64"))
    assert result.monitor is None and result.best_epoch == 0  # no validation: last epoch
    assert result.test_report["num_samples"] == 64  # the test set ran on the best model
    keys = set(load_file(str(result.best_model / "model.safetensors")))
    assert any(k.startswith("mlp.") for k in keys)
    loaded, info = load_model(result.best_model)
    assert info.kind == "deberta" and loaded.config["num_output_layers"] == 2
    texts = dev_frame["sentence"].tolist()[:64]
    expected = predict_probabilities(result.model, result.tokenizer, texts, MAX_LEN)
    out = DistributedDataClassifier(result.best_model, score_field="p", max_seq_length=MAX_LEN)(
        pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(np.stack(out["p"].to_numpy()), expected, atol=1e-5)
    truth = dev_frame["label"].to_numpy()[:64]
    assert result.test_report["accuracy"] == pytest.approx(
        float((expected.argmax(1) == truth).mean()))


@pytest.mark.slow
def test_resume_from_checkpoint_continues_the_epochs(encoder, sst2, tmp_path):
    exp_dir = tmp_path / "exp"
    common = _overrides(encoder, sst2["train"], exp_dir, "model.train_ds.num_samples=64",
                        f"model.validation_ds.file_path={sst2['dev']}",
                        "model.validation_ds.num_samples=32")
    first = train(None, [*common, "trainer.max_epochs=1"])
    steps = first.history[-1]["step"]
    assert [row["epoch"] for row in first.history] == [0] and steps == 4
    second = train(None, [*common, "trainer.max_epochs=3", "exp_manager.resume_if_exists=true"])
    assert [row["epoch"] for row in second.history] == [1, 2]
    assert [row["step"] for row in second.history] == [2 * steps, 3 * steps]
    assert second.best_epoch is not None and second.best_model.is_dir()
    # An explicit .ckpt path works too, and a missing one is an error naming it.
    third = train(None, [*common, "trainer.max_epochs=4",
                         f"exp_manager.resume_from_checkpoint={second.last_checkpoint}"])
    assert [row["epoch"] for row in third.history] == [3]
    with pytest.raises(ConfigError, match="nope.ckpt"):
        train(None, [*common, f"exp_manager.resume_from_checkpoint={tmp_path / 'nope.ckpt'}"])


@pytest.mark.slow
def test_same_seed_gives_identical_weights(encoder, sst2, tmp_path):
    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        result = train(None, _overrides(encoder, sst2["train"], tmp_path / name,
                                        "model.train_ds.num_samples=64", "trainer.max_epochs=1",
                                        f"seed={seed}",
                                        "model.dataset.class_balancing=weighted_loss"))
        return load_file(str(result.best_model / "model.safetensors"))

    a, b, c = run("a", 3), run("b", 3), run("c", 4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ------------------------------------------------------------------------------ evaluation
@pytest.mark.slow
def test_evaluate_writes_reports_and_counts_right(trained, dev_frame, tmp_path):
    rows = dev_frame.iloc[200:500]
    data = _write(tmp_path / "eval.tsv", list(zip(rows["sentence"], rows["label"],
                                                  strict=True)))
    report = evaluate(trained.best_model, data, tmp_path / "out", max_seq_length=MAX_LEN,
                      partition_rows=100)
    for name in ("metrics.json", "confusion_matrix.json", "confusion_matrix.png"):
        assert (tmp_path / "out" / name).is_file()
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Accuracy computed independently: the checkpoint loaded by hand, argmax vs the labels.
    model, _ = load_model(trained.best_model)
    probs = predict_probabilities(model, load_tokenizer(trained.best_model),
                                  rows["sentence"].tolist(), MAX_LEN)
    preds = probs.argmax(1)
    truth = rows["label"].to_numpy()
    assert report["accuracy"] == pytest.approx(float((preds == truth).mean()))
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (truth, preds), 1)
    assert report["confusion_matrix"] == matrix.tolist()
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(report["accuracy"])
    cm = json.loads((tmp_path / "out" / "confusion_matrix.json").read_text())
    assert cm["labels"] == ["negative", "positive"] and cm["matrix"] == matrix.tolist()
    assert "negative (label_id: 0)" in report["table"]


def test_report_matches_a_hand_computed_one():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, 500)
    preds = np.where(rng.random(500) < 0.6, target, rng.integers(0, 3, 500))
    report = classification_report(preds, target, labels=["a", "b", "c"])
    p, r, f, s = [], [], [], []
    for c in range(3):
        tp = np.sum((preds == c) & (target == c))
        p.append(tp / np.sum(preds == c))
        r.append(tp / np.sum(target == c))
        f.append(2 * p[-1] * r[-1] / (p[-1] + r[-1]))
        s.append(int(np.sum(target == c)))
    for i, name in enumerate("abc"):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert row["support"] == s[i]
    assert report["macro"]["f1"] == pytest.approx(np.mean(f))
    assert report["weighted"]["f1"] == pytest.approx(np.average(f, weights=s))
    assert report["micro"]["f1"] == pytest.approx(report["accuracy"])
    assert report["accuracy"] == pytest.approx(np.mean(preds == target))
    with pytest.raises(ValueError, match="label ids"):
        classification_report([0, 3], [0, 1], num_classes=2)


def test_importing_the_package_does_not_import_lightning():
    code = ("import sys, dask_classify, dask_classify.train, dask_classify.train.data; "
            "assert 'lightning' not in sys.modules, 'lightning imported'; "
            "assert 'torchmetrics' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
