from __future__ import annotations

import sys

from ocpplab.tools.cli import main

sys.exit(main())
