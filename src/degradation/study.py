"""`python -m degradation.study`: the interventions study's figures and table (report/study.py)."""

from degradation.report.study import main

if __name__ == "__main__":
    main()
