"""Thin resolvers: auth check -> service call -> schema type."""
