"""What a sweep looks like in a paper, from its run directories and without torch: Figures 6, 1 and 7 and Table 6
(figures)."""
