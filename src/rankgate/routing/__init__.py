"""Routing: learn which panel model each request needs (see ``base.py`` for the contract)."""
