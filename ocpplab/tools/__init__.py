"""The tools around the central system: the `ocpplab` command, simulated chargers (their
sans-I/O model, fleets over real sockets, the dashboard's Simulate button), the bench and
certificates."""
