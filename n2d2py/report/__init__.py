"""What a run prints and draws: N2D2's text lines (``text``) and its PNG figures (``plots``:
confusion matrix, learning curves, network graph), as N2D2's ``n2d2`` prints and writes them."""
