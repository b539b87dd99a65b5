import sys

from poollab.measure.claims.cli import main

sys.exit(main())
