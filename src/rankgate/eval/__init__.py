"""Evaluation: workloads (``datasets``), scorers (``scorers/``) and the runner (``runner``)."""
