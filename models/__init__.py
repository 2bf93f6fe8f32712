"""Pretrained checkpoints of mdsr_plugin, installed as the package ``mdsr_plugin._models``.

Each checkpoint is ``ID.safetensors`` (weights) + ``ID.json`` (model card); ``manifest.json``
lists them with the sha256 of each card.  See ``mdsr_plugin.neural.registry``.
"""
