"""``python -m indisync.sim.sky``: the sky driver on stdin/stdout, for indiserver."""

import sys

from .driver import main

sys.exit(main())
