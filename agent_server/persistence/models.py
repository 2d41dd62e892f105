"""The Peewee tables of the bundled adapter.

No database is bound here: PeeweePersistence passes its own database to every query
(``query.execute(db)``), so several adapters (two files, SQLite and PostgreSQL) can be
open in one process without rebinding each other's models.
"""

from __future__ import annotations

from datetime import datetime, timezone

from peewee import (
    BigAutoField,
    BigIntegerField,
    BlobField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    Model,
    TextField,
)


class UTCDateTimeField(DateTimeField):
    """Stored as naive UTC (TIMESTAMP, text in SQLite); read back as aware UTC."""

    def db_value(self, value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
        return value


class BaseModel(Model):
    class Meta:
        legacy_table_names = False


class SessionRow(BaseModel):
    # a serial id keeps insertion order for sessions created in the same microsecond
    id = BigAutoField()
    session_id = CharField(max_length=255, unique=True)
    agent_profile_id = CharField(max_length=255)
    name = TextField(null=True)
    created_at = UTCDateTimeField(index=True)
    last_activity = UTCDateTimeField()
    metadata = TextField(default="{}")  # JSON
    options = TextField(default="{}")  # JSON

    class Meta:
        table_name = "agent_sessions"


class TranscriptRow(BaseModel):
    # apart from the session row, so that touching last_activity does not rewrite a
    # transcript of megabytes (SQLite rewrites whole rows)
    session = ForeignKeyField(
        SessionRow,
        field=SessionRow.session_id,
        column_name="session_id",
        primary_key=True,
    )
    raw_transcript = TextField()

    class Meta:
        table_name = "agent_transcripts"


class WorkspaceFileRow(BaseModel):
    id = BigAutoField()
    session = ForeignKeyField(
        SessionRow, field=SessionRow.session_id, column_name="session_id", index=False
    )
    path = TextField()
    # the UTF-8 bytes of WorkspaceFile.content: PostgreSQL text cannot hold NUL,
    # which valid UTF-8 text files may contain
    content = BlobField()
    encoding = CharField(max_length=16)
    size = BigIntegerField()
    modified_at = UTCDateTimeField()

    class Meta:
        table_name = "agent_workspace_files"
        indexes = ((("session", "path"), True),)


class EventRow(BaseModel):
    # no foreign key: the event log may run ahead of (or outlive) the session row
    id = BigAutoField()
    session_id = CharField(max_length=255)
    seq = BigIntegerField()
    name = CharField(max_length=255)
    data = TextField()  # JSON

    class Meta:
        table_name = "agent_events"
        indexes = ((("session_id", "seq"), True),)


class ProfileRow(BaseModel):
    profile_id = CharField(max_length=255, primary_key=True)
    name = TextField()
    description = TextField(null=True)
    data = TextField()  # JSON in the profile file format (profiles.profile_to_dict)
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "agent_profiles"


MODELS = (SessionRow, TranscriptRow, WorkspaceFileRow, EventRow, ProfileRow)
