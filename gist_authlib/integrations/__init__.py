"""Thin per-framework adapters over :mod:`gist_authlib.flow`. Each imports its own framework."""
