"""The OCPP versions ocpplab speaks, each a `core.dialect.Dialect`: OCPP 1.6 now."""
