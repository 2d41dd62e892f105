"""Event names: the wire names clients see, in one place."""

BLOCK_START = "session:block:start"
BLOCK_DELTA = "session:block:delta"
BLOCK_UPDATE = "session:block:update"
BLOCK_COMPLETE = "session:block:complete"
STATUS = "session:status"
METADATA_UPDATE = "session:metadata:update"
FILE_CREATED = "session:file:created"
FILE_MODIFIED = "session:file:modified"
FILE_DELETED = "session:file:deleted"
SUBAGENT_DISCOVERED = "session:subagent:discovered"
SUBAGENT_COMPLETED = "session:subagent:completed"
TURN_STARTED = "session:turn:started"
TURN_COMPLETED = "session:turn:completed"
TURN_FAILED = "session:turn:failed"
TURN_INTERRUPTED = "session:turn:interrupted"
TURN_ENDS = (TURN_COMPLETED, TURN_FAILED, TURN_INTERRUPTED)  # one of them ends a turn
SESSIONS_LIST = "sessions:list"
ERROR = "error"

SESSION_EVENTS = (
    BLOCK_START,
    BLOCK_DELTA,
    BLOCK_UPDATE,
    BLOCK_COMPLETE,
    STATUS,
    METADATA_UPDATE,
    FILE_CREATED,
    FILE_MODIFIED,
    FILE_DELETED,
    SUBAGENT_DISCOVERED,
    SUBAGENT_COMPLETED,
    TURN_STARTED,
    TURN_COMPLETED,
    TURN_FAILED,
    TURN_INTERRUPTED,
    ERROR,
)
