"""`python -m fabulist.cli ...` (what torchrun and the tests run): the same as the `fabulist` command."""

from fabulist.cli import main

main()
