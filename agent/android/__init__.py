"""Android devices attached to this host over adb, each run as a Tether device of its own."""
