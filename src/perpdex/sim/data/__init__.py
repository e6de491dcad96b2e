"""Replay data shipped with perpdex (see README.md here for source and license)."""
