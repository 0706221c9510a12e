"""The classifier's options record, the one classifier registry, and the CLI built from both."""

from __future__ import annotations

import inspect

import pytest

import dask_classify
from dask_classify import DistributedDataClassifier
from dask_classify.classifiers import PUBLISHED, published
from dask_classify.cli import build_parser, make_classifier
from dask_classify.errors import UsageError
from dask_classify.options import OPTION_NAMES, ClassifierOptions

# keywords a published classifier takes that are neither options nor stored parameters
TRANSLATED = {"hf_token"}  # a secret, kept private (never in the repr)


def test_the_constructor_takes_exactly_the_options():
    names = [n for n in inspect.signature(DistributedDataClassifier.__init__).parameters
             if n != "self"]
    assert tuple(names) == OPTION_NAMES
    defaults = {n: p.default for n, p in
                inspect.signature(DistributedDataClassifier.__init__).parameters.items()
                if n not in ("self", "model_identifier")}
    record = ClassifierOptions("m")
    assert {n: getattr(record, n) for n in defaults} == defaults


def test_setting_an_option_rechecks_it_and_changes_the_identity(tmp_path):
    clf = DistributedDataClassifier(tmp_path, max_chars=10)
    before = clf.params()
    with pytest.raises(UsageError, match="max_chars must be a positive integer"):
        clf.max_chars = 0
    assert clf.max_chars == 10
    clf.max_chars = 20
    assert clf.options.max_chars == 20 and clf.params()["max_chars"] == 20
    assert before != clf.params()
    assert clf.options.model_identifier == str(tmp_path.resolve())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_keyword_is_an_option_or_a_declared_parameter(name):
    cls = published(name)
    declared = {p for klass in cls.__mro__ for p in vars(klass).get("parameters", ())}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for kw, param in inspect.signature(init).parameters.items():
            if kw == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            assert kw in OPTION_NAMES or kw in declared or kw in TRANSLATED, (
                f"{klass.__name__}({kw}=...) is neither a ClassifierOptions field nor in "
                f"{klass.__name__}.parameters: it would be missing from the repr, the Dask "
                "token and the job fingerprint")


def test_declared_parameters_reach_the_repr_the_keys_and_the_fingerprint():
    from dask_classify.jobs.manifest import job_fingerprint

    cls = published("finemath")
    one, two = cls("/m", center_crop_chars=100), cls("/m", center_crop_chars=200)
    assert "center_crop_chars=100" in repr(one)
    assert job_fingerprint([one], {})[0] != job_fingerprint([two], {})[0]
    assert one.model_spec.key != two.model_spec.key  # the default model_options
    assert one.params()["center_crop_chars"] == 100


def test_one_registry_feeds_the_package_the_subpackage_and_the_cli():
    parser = build_parser()
    classify = parser._subparsers._group_actions[0].choices["classify"]
    choices = next(a.choices for a in classify._actions if a.dest == "classifier")
    assert sorted(choices) == sorted(PUBLISHED)
    for name, (_, cls_name) in PUBLISHED.items():
        cls = published(name)
        assert cls.__name__ == cls_name
        assert getattr(dask_classify, cls_name) is cls
        assert getattr(dask_classify.classifiers, cls_name) is cls
        assert cls_name in dask_classify.__all__


def test_cli_passes_only_the_options_given_under_their_own_names(tmp_path):
    base = ["classify", "x.jsonl", "-o", str(tmp_path / "out"), "--model", str(tmp_path)]
    plain = make_classifier(build_parser().parse_args(base))
    assert plain.params() == DistributedDataClassifier(tmp_path).params()
    args = build_parser().parse_args([*base, "--batch-size", "8", "--max-batch-tokens", "none",
                                      "--no-fold-duplicates", "--engine", "torch"])
    clf = make_classifier(args)
    assert (clf.model_inference_batch_size, clf.max_batch_tokens, clf.fold_duplicates,
            clf.engine) == (8, None, False, "torch")
    for flag, mode in (("global", "global"), ("chunk", True)):
        args = build_parser().parse_args([*base, "--fold-duplicates", flag])
        assert make_classifier(args).fold_duplicates == mode


def test_cli_refuses_an_unknown_fold_mode_and_two_fold_flags(capsys):
    base = ["classify", "x", "-o", "y"]
    for extra in (["--fold-duplicates", "all"],
                  ["--fold-duplicates", "global", "--no-fold-duplicates"]):
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args([*base, *extra])
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "expected chunk or global, got 'all'" in err and "not allowed with" in err


def test_cli_refuses_a_non_positive_integer_with_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["classify", "x", "-o", "y", "--max-chars", "0"])
    assert stop.value.code == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
