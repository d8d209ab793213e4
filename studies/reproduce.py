"""The paper's Table 1 or Figure 1: ``studies/reproduce.py table1|figure1 [FLAGS]`` runs
``studies/table1.py`` or ``studies/figure1.py`` with the same flags (kept for the commands
that name it)."""

from __future__ import annotations

import os
import runpy
import sys

STUDIES = ("table1", "figure1")

if __name__ == "__main__":
    usage = (f"usage: {sys.argv[0]} {{{','.join(STUDIES)}}} [FLAGS]: the study to run "
             "(studies/table1.py, studies/figure1.py; --help there lists the flags)")
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(usage)
        sys.exit(0)
    if len(sys.argv) < 2 or sys.argv[1] not in STUDIES:
        print(usage, file=sys.stderr)
        sys.exit(2)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), sys.argv[1] + ".py")
    sys.argv = [script, *sys.argv[2:]]
    runpy.run_path(script, run_name="__main__")
