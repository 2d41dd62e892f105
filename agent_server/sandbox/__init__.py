"""Sandboxes: the provider interface and the bundled providers (local, modal)."""
