"""The memory study: per-method peak memory measured in fresh processes, a fitted memory model, Table 5."""
