"""The bi-directional neural upsampler (Winkler, Müller, Sauceda, MLST 3 (2022) 025011).

Modules
-------
models       the learned integrators (Bi-LSTM, Bi-RNN, Bi-NODE, Bi-HNN, uni-directional variants)
geometry     canonical frames (Kabsch) and atom-order matching by molecular graph
checkpoint   safetensors weights + JSON model card, sha256-verified
registry     where checkpoints are found (``models/``, ``MDSR_MODELS_PATH``) and which fits
upsampler    the ``neural`` method used by :func:`mdsr_plugin.upsample`
train        ``mdsr-train``
cli          ``mdsr-train`` and ``mdsr-models``

Nothing here imports torch until a model is built or loaded.
"""
