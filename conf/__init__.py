"""Hydra config files for `python -m experiments.train`.

A package (not just a folder) so Hydra finds it as `pkg://conf`, both in this
repository and in an installed wheel; the schemas are in experiments/config/.
"""
