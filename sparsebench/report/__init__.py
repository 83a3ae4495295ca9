"""Reporting: the leaderboard's tables, Markdown, page and plots, built from MLflow runs."""
