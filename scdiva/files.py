"""The files of a saved ScDiVa model (``save_pretrained`` / ``from_pretrained``), named in one place.

No heavy imports: the workflow reads these names when it parses its config.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"
#: every file of a saved model, in the order they are listed to users
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE)
