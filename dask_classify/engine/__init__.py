"""The engine: what runs a model on one worker, below the classifier and the Dask layer.

========================  ==================================================================
``spec``                  :class:`~dask_classify.engine.spec.ModelSpec` (what a worker loads)
                          and the environment :class:`~dask_classify.engine.spec.Settings`
``cache``                 the per-process model and tokenizer caches, engine choice
``run``                   the batch run loop (length-sorted batches, CUDA OOM halving)
``model``                 the torch modules (NVIDIA's ``Deberta``, transformers classifiers)
``loading``               loading checkpoints and tokenizers, saving NVIDIA's format
``fast_attention``        the package's DeBERTa-v2/v3 attention forward
``onnx_export``           ONNX export and its on-disk cache
``onnx_runtime``          ONNX Runtime sessions, shipped graphs, the ``tokenizers`` tokenizer
========================  ==================================================================

Importing this package imports nothing heavy: each module is imported where it is used.
"""
