"""One module per system under test; each runs the workloads in its own process."""
