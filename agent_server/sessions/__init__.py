"""Sessions: the manager and each session's lifecycle, queue and lazy sandbox."""
