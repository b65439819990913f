"""The command line sets OpenMP's wait policy before torch loads, unless the user set one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# torch reads the policy when it loads: the package must set it before anything imports torch.
PROBE = (
    "import os, sys, converter.cli; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_wait_policy_defaults_to_passive_and_respects_the_user(given, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [expected, "False"]
