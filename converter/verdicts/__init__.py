"""Verdicts: parity of a graph against PyTorch, the judge, tolerances, verify."""
