"""Dash Pages: one module per route."""
