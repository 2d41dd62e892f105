"""``python -m agent_server.devtools.bench``: run the benchmarks."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

if sys.argv[1:2] == ["window"]:  # the profiling driver (window.py)
    from agent_server.devtools.bench.window import main

    sys.exit(main(sys.argv[2:]))

from agent_server.devtools.bench.runner import main  # noqa: E402

sys.exit(main())
