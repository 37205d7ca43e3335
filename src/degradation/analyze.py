"""`python -m degradation.analyze ANALYSIS` (`make analyze`): why plain nets degrade. See analysis/command.py."""

from degradation.analysis.command import main

if __name__ == "__main__":
    main()
