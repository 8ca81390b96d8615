import sys

from kdreg.cli import main

sys.exit(main())
