"""`python -m degradation.figures` (`make figures`): the command line of report/figures.py, under its usual name."""

from degradation.report.figures import main

if __name__ == "__main__":
    main()
