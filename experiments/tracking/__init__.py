"""MLflow tracking: which store, what runs are tagged with, how a run ends, and what
happens while the tracking server is away.

    tags       every tag name the harness writes, defined once
    arguments  the --tracking-uri option every command that reads or writes runs takes
    store      the store's URI (--tracking-uri, MLFLOW_TRACKING_URI, ./mlflow.db), checks
    metadata   a run's datasets and tags logged so that a failed call never fails training
    git        the code's commit and uncommitted changes
    params     a nested config as flat MLflow params
    swept      the keys a sweep varies, as run names, tables and legends show them
    lifecycle  a run always ends FINISHED, FAILED or KILLED
    signals    the one place a stop signal (Ctrl-C, SIGTERM, SIGHUP, SLURM's) becomes a stop
    offline    training goes on while the tracking server is unreachable
    history    metric series read back, metrics sent in batches
    layer_metrics  the names per-layer statistics are logged under (watch.<layer>.<stat>)
    server     a local `mlflow server` in a child process
    process_group  that child and all it starts, ended together, never outliving us
    ui         links into MLflow's UI, and the UI started on the store
    views      a sweep's saved view in the UI: its runs' curves on one chart a metric
    reap       runs left RUNNING by a dead process, marked KILLED
"""
