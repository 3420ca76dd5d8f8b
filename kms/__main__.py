"""`python -m kms` runs the command-line interface."""

import sys

from kms.cli import main

sys.exit(main())
