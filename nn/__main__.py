"""`python -m nn`: the command line."""

import sys

from nn.cli import main

sys.exit(main())
