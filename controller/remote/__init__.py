"""The operator's side of a running controller: an HTTP client, and the `tether op` and `tether devices` commands."""
