"""Serving trained networks: the MLflow pyfunc model a run logs (pyfunc_model), and image
files classified with it (predict)."""
