"""Stores and the product catalog."""
