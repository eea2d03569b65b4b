"""How a process uses the machine: its allocator (allocator), its cores (threads), and
which BLAS computes its products (blas)."""
