"""``python -m condensa``."""

import sys

from condensa.cli import main

sys.exit(main())
