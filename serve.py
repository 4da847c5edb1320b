"""Start the QA service: builds the index if it is missing or stale, then serves HTTP.

Settings come from QA_* environment variables (see README). Ctrl-C stops it.
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
