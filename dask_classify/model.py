"""Models and checkpoints, as one namespace (kept for the README's "Your own model" example).

The code lives in :mod:`dask_classify.checkpoint` (reading a checkpoint's description),
:mod:`dask_classify.engine.model` (the torch modules, loading weights),
:mod:`dask_classify.engine.loading` (loading models and tokenizers, saving) and
:mod:`dask_classify.weights` (which files hold weights); import from there in new code.
"""

from dask_classify.checkpoint import (  # noqa: F401
    MULTI_LABEL,
    PROBLEM_TYPES,
    REGRESSION,
    SINGLE_LABEL,
    ModelInfo,
    config_for,
    model_info,
    model_info_for,
    position_limit,
    problem_type,
    read_config,
    resolve_model_dir,
)
from dask_classify.engine.loading import load_model, load_tokenizer, save_checkpoint  # noqa: F401
from dask_classify.engine.model import (  # noqa: F401
    TOKENIZER_FILES,
    Deberta,
    HFSequenceClassifier,
    backbone_config,
    load_deberta,
    load_weights,
)
from dask_classify.errors import CheckpointError  # noqa: F401
from dask_classify.weights import PICKLE_NAMES, SAFETENSORS_NAME, weights_fingerprint  # noqa: F401
