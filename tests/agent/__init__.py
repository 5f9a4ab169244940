"""Tests of the agent, mirroring agent/."""
