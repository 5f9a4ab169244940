"""Tests of Tether, mirroring the source tree."""
