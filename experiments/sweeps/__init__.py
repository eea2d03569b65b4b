"""Sweeps: many runs under one parent MLflow run.

    job        one job of `python -m experiments.train`, in a sweep or alone
    trial      a search trial over replicates (search.seeds): a trial run, its seed runs below
    tracking   the Hydra callback that opens and ends the parent run and writes the report
    parent     the parent run: found by its jobs, its children, orphans ended, jobs
               that made no run
    launchers  what jobs in other processes need: BLAS threads, the environment
    plan       whether parallel jobs pay on this machine (`make sweep-parallel`); a
               grid's jobs, each checked before the sweep starts
"""
