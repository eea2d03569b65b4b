"""PyTorch as a yardstick, never a dependency of `cnn/`: the same network built in PyTorch
(twin), and the subset recipes trained by PyTorch alone (recipe). Needs the optional
extra `pip install torch`."""
