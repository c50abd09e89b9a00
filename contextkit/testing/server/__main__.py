"""`python -m contextkit.testing.server [--host H] [--port N] [--api-key K]`, see `main`."""

import sys

from contextkit.testing.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
