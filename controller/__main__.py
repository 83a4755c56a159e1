"""`python -m controller` behaves exactly like the `peblar-surplus` console script."""

import sys

from controller.cli import main

sys.exit(main())
