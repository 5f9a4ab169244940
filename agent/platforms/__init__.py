"""What the agent can ask of the device it runs on, one module per platform."""

from agent.platforms.linux import LinuxPlatform

__all__ = ["LinuxPlatform"]
