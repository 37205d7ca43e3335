"""`python -m degradation.train [overrides]`: train one network, or a sweep with -m. See degradation.cli."""

from degradation.cli import main

if __name__ == "__main__":
    main()
