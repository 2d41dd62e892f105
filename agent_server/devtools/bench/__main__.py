"""``python -m agent_server.devtools.bench``: run the benchmarks."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from agent_server.devtools.bench.runner import main  # noqa: E402

sys.exit(main())
