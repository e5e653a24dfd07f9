"""`python -m kerasrl run ...`."""

import sys

from kerasrl.cli import main

sys.exit(main())
