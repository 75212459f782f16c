"""`python -m debops_ci`: the same as the `debops-ci` command."""

from debops_ci.cli.main import main

main()
