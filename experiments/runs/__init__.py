"""One training run, from a config to a finished MLflow run.

    build        the config -> data, network, optimiser, schedule, batches (no tracking)
    tracked      train_and_log: train inside an MLflow run and log everything about it
    callbacks    the training loop's metrics logger, progress bar, the config's own
    health       checks before training, per-layer statistics during it
    lr_find      the learning-rate range test of a configured run, and training at its rate
    interpolation  the loss along the line from the initial to the trained weights
    landscape    the loss on a plane through the trained weights (filter-normalised)
    checkpoints  where checkpoints are kept, and how they are found to resume
    results      the data used, the test results, figures, weights and model
    logged       a logged run's config and provenance, read back
    rerun        a logged run trained again and compared
    resume       a KILLED or FAILED run continued in place
"""
