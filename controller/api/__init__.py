"""The controller's HTTP API: the Esper-style /v0 contract (and, later, the Cumulocity-style one)."""
