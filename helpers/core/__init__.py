"""Shared by every stage: atomic file writes, project paths, device and precision, the recorded environment, CPU threads."""
