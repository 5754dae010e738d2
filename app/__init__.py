"""Questline: a gamification engine served as one GraphQL API."""
