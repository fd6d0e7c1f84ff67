"""What a run prints and draws: N2D2's text lines (``text``) and its PNG figures (``plots``:
confusion matrix, learning curves, network graph), spec/ini.md §6.2 and §6.3."""
