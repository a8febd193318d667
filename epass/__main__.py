"""`python -m epass` runs the CLI."""

from epass.cli import main

main()
