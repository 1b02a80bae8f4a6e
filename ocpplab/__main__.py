from __future__ import annotations

import sys

from ocpplab.cli import main

sys.exit(main())
