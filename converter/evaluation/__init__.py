"""Evaluation: backends over a Human3.6M set, MPJPE of each and their difference, pictures."""
