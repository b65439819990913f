"""`python -m cnp_convert`: the cnp-convert command."""

from .cli.main import main

if __name__ == "__main__":
    main()
