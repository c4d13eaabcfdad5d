"""Fake provider servers that speak the vendors' wire protocols, for tests driving the real SDKs."""
