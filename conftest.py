"""Top-level pytest configuration shared by every test directory."""
