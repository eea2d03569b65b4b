"""The research harness: Hydra configs, MLflow tracking, sweeps, reports and reruns.

Only this package imports Hydra or MLflow; the `cnn` package stays a plain NumPy library.

The modules at this level are the commands (`python -m experiments.<name>`): each parses
its arguments, calls one library function and prints. The library is grouped by concern
in sub-packages, in layers (each imports only those below it; pyproject.toml's
import-linter contracts hold them to it):

    sweeps, benchmark            many runs under one parent run; speed, of built runs too
    runs                         one training run, from a config to a finished MLflow run
    reporting, serving           figures and reports; logged models
    config                       typed schemas, validation, composition
    datasets                     data sources, each a registered schema
    tracking, runtime, pytorch   MLflow; the process's allocator and cores; PyTorch twins
"""
