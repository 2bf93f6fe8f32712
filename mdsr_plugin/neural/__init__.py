"""The bi-directional neural upsampler (Winkler, Müller, Sauceda, MLST 3 (2022) 025011).

Modules
-------
models       the learned integrators (Bi-LSTM, Bi-RNN, Bi-NODE, Bi-HNN, uni-directional variants)
card         the model card's schema: keys, version, validation, held-out rows
checkpoint   safetensors weights + JSON model card, sha256-verified
registry     where checkpoints are found (``models/``, ``MDSR_MODELS_PATH``) and which fits
local        the periodic box's local integrator (atomic energies, neighbour lists)
integrator   velocity Verlet, forward and backward, blended: the one integration of both
plugin       the ``neural`` and ``adapted`` methods' registry records (which checkpoint fits)
upsampler    the one learned method: any checkpoint, through a molecule or box frame adapter
shooting     coarse velocities fitted where the input has none
training     the one training loop (stages, resume, budget, best weights)
coarse       learning from coarse frames: the trainer a molecule (adapt) and a box (adapt_box) share
data         training data: one atom order, random windows in the canonical frame
train        ``mdsr-train`` from fine references (scoring: :mod:`mdsr_plugin.evaluation.scoring`)
cli          ``mdsr-train`` and ``mdsr-models``

Nothing here imports torch until a model is built or loaded.
"""
