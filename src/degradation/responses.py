"""`python -m degradation.responses CHECKPOINT`: Figure 7's data for a run trained before runs wrote it (the
command line of analysis/responses.py, kept under its old name)."""

from degradation.analysis.responses import main

if __name__ == "__main__":
    main()
