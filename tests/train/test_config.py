"""``validate_config``: one check per config section, one error listing every problem in order."""

from __future__ import annotations

import pytest

pytest.importorskip("omegaconf")

from dask_classify.errors import ConfigError as ErrorsConfigError  # noqa: E402
from dask_classify.train.config import ConfigError, load_config, validate_config  # noqa: E402


def test_config_error_is_the_one_of_errors():
    assert ConfigError is ErrorsConfigError


def test_one_problem_per_section_in_section_order():
    with pytest.raises(ConfigError) as err:  # load_config validates (not for training)
        load_config(overrides=[
            "trainer.precision=8",  # trainer (checked last)
            "exp_manager.create_csv_logger=1",  # exp_manager
            "model.optim.name=sgdx",  # optim
            "model.validation_ds.batch_size=0",  # splits
            "model.classifier_head.fc_dropout=1.5",  # head
            "model.dataset.num_classes=1",  # dataset
            "seed=x",  # model (checked first)
        ])
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid training config:"
    keys = [line.strip().split(":")[0] for line in lines[1:]]
    assert keys == ["seed", "model.dataset.num_classes", "model.classifier_head.fc_dropout",
                    "model.validation_ds.batch_size", "model.optim.name",
                    "exp_manager.create_csv_logger", "trainer.precision"]
    assert lines[-1] == ("  trainer.precision: must be one of ['16', '16-mixed', '16-true', "
                         "'32', '32-true', '64', '64-true', 'bf16', 'bf16-mixed', 'bf16-true', "
                         "'transformer-engine', 'transformer-engine-float16'], not 8")


def test_for_training_adds_the_required_paths_only():
    cfg = load_config()
    validate_config(cfg, for_training=False)  # nothing required outside training
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, for_training=True)
    assert str(err.value) == (
        "invalid training config:\n"
        "  model.language_model.pretrained_model_name: required (a folder or hub id of an "
        "encoder)\n"
        "  model.train_ds.file_path: required (a sentence<TAB>label TSV file)")
