"""tetherd: the Tether agent that runs operations on a device and reports their status over MQTT."""

__version__ = "0.1.0"
