"""``python -m mdsr_plugin.neural.cli_train`` runs ``mdsr-train`` (for scripts without the entry point)."""

import sys

from .cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
