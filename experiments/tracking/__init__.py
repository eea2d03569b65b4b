"""MLflow tracking: which store, what runs are tagged with, how a run ends, and what
happens while the tracking server is away.

    tags       every tag name the harness writes, defined once
    store      the store's URI (--tracking-uri, MLFLOW_TRACKING_URI, ./mlflow.db), checks
    git        the code's commit and uncommitted changes
    params     a nested config as flat MLflow params
    lifecycle  a run always ends FINISHED, FAILED or KILLED
    offline    training goes on while the tracking server is unreachable
    history    metric series read back, metrics sent in batches
    server     a local `mlflow server` in a child process
    reap       runs left RUNNING by a dead process, marked KILLED
"""
