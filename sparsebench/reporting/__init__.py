"""Reporting: the leaderboard's tables, plots and page, built from MLflow runs."""
