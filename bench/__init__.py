"""Benchmarks of the service's hot paths: ``python -m bench`` runs them all."""
