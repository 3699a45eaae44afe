"""The adversarial suite's figures: its tests add to them, tests/conftest.py adds up the workers' and prints them."""

from __future__ import annotations

from collections import Counter

#: Figures of the adversarial suite (tests/login/test_adversarial*.py), printed at the end of the run.
ADVERSARIAL: Counter[str] = Counter()
