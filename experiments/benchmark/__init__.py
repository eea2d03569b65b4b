"""Benchmarks: timing on a shared machine (timing), whole networks beside their PyTorch
twins (models), and what is printed and logged (results)."""
