"""``python -m dashtok``: the ``dashtok`` command, also as torchrun starts it
(``torchrun --nproc-per-node 2 -m dashtok encode ... --shards DIR``)."""

from dashtok.cli import main

raise SystemExit(main())
