"""``train/export.py``: the best-model callback's bookkeeping and the export folder's name."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

pytest.importorskip("lightning")

from dask_classify.errors import ConfigError  # noqa: E402
from dask_classify.train import trainer  # noqa: E402
from dask_classify.train.export import BestModelExport, export_folder  # noqa: E402


def _trainer(epoch, step, sanity=False, **metrics):
    # is_global_zero False: the callback only records the export, it writes nothing
    return SimpleNamespace(callback_metrics=metrics, sanity_checking=sanity,
                           current_epoch=epoch, global_step=step, is_global_zero=False)


@pytest.mark.parametrize(("mode", "values", "best", "epoch"), [
    ("max", [0.5, 0.7, 0.6], 0.7, 1),
    ("min", [0.5, 0.7, 0.4], 0.4, 2),
    ("max", [0.5, math.nan, 0.5], 0.5, 0),  # NaN and ties do not count as better
])
def test_the_best_value_and_its_epoch_are_kept(tmp_path, mode, values, best, epoch):
    export = BestModelExport(tmp_path / "best", tokenizer=None, monitor="val_m", mode=mode)
    for e, value in enumerate(values):
        export.on_validation_end(_trainer(e, 10 * (e + 1), val_m=value), None)
    assert (export.best_score, export.best_epoch) == (best, epoch)
    assert export.export_step == 10 * (epoch + 1)
    assert not (tmp_path / "best").exists()


def test_the_sanity_check_and_monitor_none_skip_validation(tmp_path):
    export = BestModelExport(tmp_path / "best", tokenizer=None, monitor="val_m")
    export.on_validation_end(_trainer(0, 0, sanity=True, val_m=1.0), None)
    assert export.best_score is None and export.export_step is None
    every_epoch = BestModelExport(tmp_path / "best", tokenizer=None, monitor=None)
    every_epoch.on_validation_end(_trainer(0, 5, val_m=1.0), None)
    assert every_epoch.export_step is None
    every_epoch.on_train_epoch_end(_trainer(3, 7), None)
    assert (every_epoch.best_epoch, every_epoch.export_step) == (3, 7)


def test_an_unlogged_monitor_names_the_logged_metrics(tmp_path):
    export = BestModelExport(tmp_path / "best", tokenizer=None, monitor="val_f1")
    with pytest.raises(ConfigError) as err:
        export.on_validation_end(_trainer(0, 1, val_loss=0.3, val_accuracy=0.9, train_loss=1.0),
                                 None)
    assert str(err.value) == ("exp_manager.checkpoint_callback_params.monitor: metric 'val_f1' "
                              "was not logged; logged validation metrics: ['val_accuracy', "
                              "'val_loss']")


def test_state_round_trip(tmp_path):
    export = BestModelExport(tmp_path / "best", tokenizer=None, monitor="val_m")
    export.load_state_dict({})
    assert export.state_dict() == {"best_score": None, "best_epoch": None}
    export.load_state_dict({"best_score": 0.2, "best_epoch": 4})
    assert export.state_dict() == {"best_score": 0.2, "best_epoch": 4}


def test_export_folder_drops_only_the_nemo_suffix():
    assert export_folder("m.nemo").as_posix() == "m"
    assert export_folder("runs/m.v2").as_posix() == "runs/m.v2"
    assert export_folder("~/m.nemo").name == "m" and "~" not in str(export_folder("~/m.nemo"))


def test_still_importable_from_the_trainer():
    assert trainer.BestModelExport is BestModelExport
    assert trainer.export_folder is export_folder
    from dask_classify.train.export import export_checkpoint

    assert trainer.export_checkpoint is export_checkpoint
