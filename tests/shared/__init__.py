"""Tests of the shared wire contract."""
