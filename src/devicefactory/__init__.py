"""Device Factory Service."""
