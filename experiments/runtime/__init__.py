"""How a process uses the machine: its allocator (allocator) and its cores (threads)."""
