"""The suite's helpers, imported by the tests as ``support.<module>`` (pyproject.toml puts tests/ on sys.path).

Fixtures and pytest hooks stay in tests/conftest.py; everything else the tests share lives here, one module per
subject.
"""
