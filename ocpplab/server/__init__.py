"""Thin I/O around the core: the gateway that holds charger websockets, the handshake,
charger credentials and TLS, and the roster and operations shared by every view."""
