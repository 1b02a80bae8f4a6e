"""The pure core: OCPP-J frames, the sans-I/O charger connection, answer rules, typed
messages, bounded schema checks and replay. Nothing here touches a socket, starts a task
or reads the clock by itself, so all of it is tested with literal frames and clocks."""
