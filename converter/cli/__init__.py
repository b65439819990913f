"""The command line: a Typer app and one thin module per command group.

Before any command module imports torch: unless the user chose otherwise, OpenMP threads wait
passively. With the default (spinning) policy, torch's threads on a machine whose cores are also
busy with something else made every PyTorch forward many times slower; on an idle machine the
policy changes little (figures: docs/precision_and_speed.md, "What was tried on the onnxruntime
session").
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
