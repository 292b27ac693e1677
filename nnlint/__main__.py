"""Allow ``python -m nnlint``."""

from nnlint.cli import main

if __name__ == "__main__":
    main()
