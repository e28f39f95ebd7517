"""Hypothesis settings for the property tests: bounded, reproducible, no example database.

The ``ci`` profile (loaded unless ``HYPOTHESIS_PROFILE`` names another) derandomizes the
runs, so every run tries the same examples and a failure reproduces as is, and keeps no
example database. ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples, ten times as
many per test (see `tests.property.support.examples`), to hunt for new failures locally.

Each test sets its own ``max_examples`` through ``examples()``, which scales with the
profile, so that the whole directory runs in well under a minute on two cores.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, database=None, derandomize=True, print_blob=True
)
settings.register_profile(
    "explore", max_examples=1000, deadline=None, database=None, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
