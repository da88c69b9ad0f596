"""``python -m dashtok.bench JOB``: the fresh process in which ``dashtok bench`` measures peak memory."""

from dashtok.bench.speed import memory_child_main

memory_child_main()
