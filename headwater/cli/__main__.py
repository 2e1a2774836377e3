"""`python -m headwater.cli`, as the tests and the local stack start it."""

from headwater.cli import main

main()
