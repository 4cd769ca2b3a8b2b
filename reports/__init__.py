"""Reports read run directories only (never models) and write tables, plots and leaderboards."""
