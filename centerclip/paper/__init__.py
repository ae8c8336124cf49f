"""The paper's results from finished runs: Tables 1-9, Figures 3-5, and the authors' released
checkpoints with their table."""
