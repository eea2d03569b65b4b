"""Not a command: the import path that models logged before experiments/serving/ existed
name in their loading script (`from experiments.pyfunc_model import CifarClassifier`).

Such a model ships its own copy of this module, which a fresh process loads; a process
that has already imported this package (`python -m experiments.predict`) finds this one.
"""

from experiments.serving.pyfunc_model import CifarClassifier

__all__ = ["CifarClassifier"]
