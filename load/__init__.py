"""Load test: simulated analysts against gunicorn; `make load` runs it."""
