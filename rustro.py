#!/usr/bin/env python3
"""Entry point: `python rustro.py run` simulates a trading day; see README.md."""
import sys

from rustro.cli import main

if __name__ == "__main__":
    sys.exit(main())
