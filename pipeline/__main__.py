"""``python -m pipeline``: the same options as ``pin2vec sessionize``."""

import sys

from recommender.cli import main

if __name__ == "__main__":
    sys.exit(main(["sessionize", *sys.argv[1:]]))
