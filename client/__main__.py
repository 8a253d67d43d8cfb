"""`python -m threadctl.client`: the same as the `threadctl` command."""

import sys

from threadctl.client.cli import main

sys.exit(main())
