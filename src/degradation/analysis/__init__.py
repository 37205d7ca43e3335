"""What explains the degradation, measured on trained networks or at init: Figure 7's layer responses (responses)."""
