"""Adapters as products: what a user does with a trained run's adapter outside the study."""
