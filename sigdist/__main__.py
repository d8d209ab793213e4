import sys

from sigdist.cli import main

sys.exit(main())
