"""tether: the Tether controller: REST API, store, dispatcher and ingest."""
