"""Tests mirroring medai_core (see README, "Architecture")."""
