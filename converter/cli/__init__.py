"""The command line: a Typer app and one thin module per command group.

Before any command module imports torch: unless the user chose otherwise, OpenMP threads wait
passively. With the default (spinning) policy, torch's two threads on a 2-core machine that is
also running something else made every PyTorch forward 10-20x slower (the float64 reference of
an export's verdict: 7.2 s instead of 0.6 s), and `cnp-convert onnx --variant XS` took about
19 s instead of 10 s. On an idle machine the policy changes little.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
