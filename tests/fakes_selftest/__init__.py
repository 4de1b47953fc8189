"""Self-tests proving the fakes in tests/fakes produce their faults on the wire."""
