"""A sweep as a paper shows it, from run directories, without torch: Figures 6, 1, 7 and Table 6 (figures)."""
