"""Benchmarks: timing on a shared machine and the matrix-product yardstick (timing), each
layer's time inside training steps (layer_times), the FLOP ceiling of a step (ceiling),
each layer's floors and what it takes above them (bounds), a full epoch in a fresh
process (epoch), a measurement in a fresh process (fresh), NumPy's and PyTorch's
throughput in alternating fresh processes (turns), the machine's load and when a ratio
can be trusted (load), whole networks beside their PyTorch twins (models), and what is
printed and logged (results)."""
