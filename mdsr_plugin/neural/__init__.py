"""The bi-directional neural upsampler (Winkler, Müller, Sauceda, MLST 3 (2022) 025011).

Modules
-------
models       the learned integrators (Bi-LSTM, Bi-RNN, Bi-NODE, Bi-HNN, uni-directional variants)
geometry     canonical frames (Kabsch) and atom-order matching by molecular graph
             (re-exported from :mod:`mdsr_plugin.molecule`)
card         the model card's schema: keys, version, validation, held-out rows
checkpoint   safetensors weights + JSON model card, sha256-verified
registry     where checkpoints are found (``models/``, ``MDSR_MODELS_PATH``) and which fits
plugin       the ``neural`` method's registry record (which checkpoint fits, without torch)
upsampler    the ``neural`` method used by :func:`mdsr_plugin.upsample`
data         training data: one atom order, random windows in the canonical frame
train        ``mdsr-train``'s training loop (scoring: :mod:`mdsr_plugin.evaluation.scoring`)
cli          ``mdsr-train`` and ``mdsr-models``

Nothing here imports torch until a model is built or loaded.
"""
