"""Ranking: leaderboards with intervals, paired tests, Bradley–Terry, Pareto, calibration."""
