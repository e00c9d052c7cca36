"""Allows ``python -m mysetlist_slo``, the same as the ``mysetlist-slo`` command."""

import sys

from mysetlist_slo.cli import main

sys.exit(main())
