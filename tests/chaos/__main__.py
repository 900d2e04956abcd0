"""``python -m tests.chaos --world sqlite|postgres --kills N --seed S``."""

import sys

from .runner import main

sys.exit(main())
