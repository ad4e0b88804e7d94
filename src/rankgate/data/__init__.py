"""Data shipped with rankgate: the embedded panel's evaluation outcomes."""
