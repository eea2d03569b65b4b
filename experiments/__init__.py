"""The research harness: Hydra configs, MLflow tracking, sweeps, reports and reruns.

Only this package imports Hydra or MLflow; the `cnn` package stays a plain NumPy library.
Entry points: `python -m experiments.train`, `python -m experiments.report`,
`python -m experiments.rerun`.
"""
