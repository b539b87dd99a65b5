"""``python -m poollab.measure.peers``: the asyncio consumer against its peers."""

import sys

from poollab.measure.peers.cli import main

sys.exit(main())
