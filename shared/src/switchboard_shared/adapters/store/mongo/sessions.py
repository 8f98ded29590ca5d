"""Browser voice sessions in MongoDB (the `SessionStore` port). Every change of an active
session is one `find_one_and_update` guarded by `status: active`, so it is atomic on the
server; a partial unique index keeps one active session per API key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from switchboard_shared.adapters.store.common.records import (
    as_stored,
    stored_now,
    stored_value,
)
from switchboard_shared.adapters.store.common.sessions import (
    check_paging,
    ending_fields,
    holder_keeps_key,
)
from switchboard_shared.adapters.store.mongo.connection import OnMongo
from switchboard_shared.adapters.store.mongo.documents import (
    Document,
    all_of,
    driver_errors,
    from_document,
    strip_id,
    to_document,
)
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import (
    Session,
    SessionEndReason,
    SessionPage,
    SessionStatus,
    SessionUsage,
    TranscriptTurn,
    merged_transcript,
)
from switchboard_shared.ports import ActiveSessionExists, AlreadyExists

_ACTIVE = SessionStatus.ACTIVE.value
# A concurrent request can take the idempotency key or the key's active slot between our
# read and our insert; each retry decides against what it finds then.
_INSERT_ATTEMPTS = 3
# Filling a transcript the edge is still appending to: read, merge and try again.
_FILL_ATTEMPTS = 5


class MongoSessionStore(OnMongo):
    """`SessionStore` on a MongoDB database (collection `sessions`)."""

    async def insert_session(
        self, session: Session, idempotency_ttl_seconds: float
    ) -> tuple[Session, bool]:
        stored = as_stored(session)
        sessions = self._db.collection("sessions")
        key = stored.idempotency_key
        with driver_errors():
            for _ in range(_INSERT_ATTEMPTS):
                if key is not None:
                    holder = from_document(
                        Session,
                        await sessions.find_one(
                            {"tenant_id": stored.tenant_id, "idempotency_key": key}
                        ),
                    )
                    if holder is not None:
                        if holder_keeps_key(holder, stored, idempotency_ttl_seconds, utcnow()):
                            return holder, False
                        await sessions.update_one(
                            {"_id": holder.session_id, "idempotency_key": key},
                            {"$set": {"idempotency_key": None}},
                        )
                active = await sessions.find_one(
                    {"api_key_id": stored.api_key_id, "status": _ACTIVE}, {"_id": 1}
                )
                if active is not None:
                    raise ActiveSessionExists(str(active["_id"]))
                try:
                    await sessions.insert_one(to_document(stored, stored.session_id))
                except DuplicateKeyError:
                    continue  # the key or the active slot was taken meanwhile: decide again
                return stored, True
        raise AlreadyExists(f"session {stored.session_id} could not be inserted")

    async def get_session(self, session_id: str, tenant_id: str | None = None) -> Session | None:
        query: Document = {"_id": session_id}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        with driver_errors():
            found = await self._db.collection("sessions").find_one(query)
        return from_document(Session, found)

    async def list_sessions(
        self, tenant_id: str, status: SessionStatus | None, limit: int, offset: int
    ) -> SessionPage:
        check_paging(limit, offset)
        query: Document = {"tenant_id": tenant_id}
        if status is not None:
            query["status"] = status.value
        sessions = self._db.collection("sessions")
        with driver_errors():
            total = await sessions.count_documents(query)
            cursor = sessions.find(
                query,
                sort=[("started_at", DESCENDING), ("session_id", DESCENDING)],
                skip=offset,
                limit=limit,
            )
            found = [Session.model_validate(strip_id(d)) async for d in cursor]
        return SessionPage(sessions=found, total=total)

    async def end_session(
        self, session_id: str, reason: SessionEndReason, ended_at: datetime | None = None
    ) -> Session | None:
        current = await self.get_session(session_id)
        if current is None or not current.is_active:
            return None
        return await self._change_active(
            session_id, {"$set": ending_fields(current, reason, ended_at)}
        )

    async def add_transcript_turns(
        self, session_id: str, turns: list[TranscriptTurn]
    ) -> Session | None:
        return await self._change_active(
            session_id,
            {
                "$push": {"transcript": {"$each": stored_value(turns)}},
                "$set": {"updated_at": stored_now()},
            },
        )

    async def set_session_provider(
        self, session_id: str, provider: str, provider_session_id: str
    ) -> Session | None:
        fields = {"provider": provider, "provider_session_id": provider_session_id}
        return await self._change_active(
            session_id, {"$set": fields | {"updated_at": stored_now()}}
        )

    async def _change_active(self, session_id: str, update: Document) -> Session | None:
        with driver_errors():
            found = await self._db.collection("sessions").find_one_and_update(
                {"_id": session_id, "status": _ACTIVE},
                update,
                return_document=ReturnDocument.AFTER,
            )
        return from_document(Session, found)

    async def find_session_by_provider_id(
        self, provider: str, provider_session_id: str
    ) -> Session | None:
        query = {"provider": provider, "provider_session_id": provider_session_id}
        with driver_errors():
            found = await self._db.collection("sessions").find_one(query)
        return from_document(Session, found)

    async def fill_session_transcript(
        self, session_id: str, reported: list[TranscriptTurn]
    ) -> Session | None:
        sessions = self._db.collection("sessions")
        for _ in range(_FILL_ATTEMPTS):
            session = await self.get_session(session_id)
            if session is None or len(reported) <= len(session.transcript):
                return session
            missing = merged_transcript(session.transcript, reported)[len(session.transcript) :]
            with driver_errors():
                # Appends only to the transcript we read: a turn the edge stored meanwhile
                # makes it read and merge again.
                found = await sessions.find_one_and_update(
                    {"_id": session_id, "transcript": {"$size": len(session.transcript)}},
                    {
                        "$push": {"transcript": {"$each": stored_value(missing)}},
                        "$set": {"updated_at": stored_now()},
                    },
                    return_document=ReturnDocument.AFTER,
                )
            if found is not None:
                return from_document(Session, found)
        return await self.get_session(session_id)

    async def touch_session(self, session_id: str, alive_until: datetime) -> Session | None:
        fields = {"alive_until": stored_value(alive_until), "updated_at": stored_now()}
        return await self._change_active(session_id, {"$set": fields})

    async def find_sessions(
        self,
        *,
        expiring_before: datetime | None = None,
        abandoned_before: datetime | None = None,
        notify_pending: bool | None = None,
        updated_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Session]:
        clauses: list[Document] = []
        if expiring_before is not None:
            clauses.append(
                {"status": _ACTIVE, "expires_at": {"$lt": stored_value(expiring_before)}}
            )
        if abandoned_before is not None:
            clauses.append(
                {"status": _ACTIVE, "alive_until": {"$lt": stored_value(abandoned_before)}}
            )
        if notify_pending is not None:
            clauses.append({"notify_pending": notify_pending})
        if updated_before is not None:
            clauses.append({"updated_at": {"$lt": stored_value(updated_before)}})
        with driver_errors():
            cursor = self._db.collection("sessions").find(
                all_of(clauses), sort=[("updated_at", ASCENDING)], limit=limit
            )
            return [Session.model_validate(strip_id(d)) async for d in cursor]

    async def mark_session_notified(self, session_id: str) -> None:
        with driver_errors():
            await self._db.collection("sessions").update_one(
                {"_id": session_id, "notify_pending": True},
                {"$set": {"notify_pending": False}},
            )

    async def use_join_token(self, token_id: str, expires_at: datetime) -> bool:
        try:
            with driver_errors():
                await self._db.collection("used_join_tokens").insert_one(
                    {"_id": token_id, "expires_at": stored_value(expires_at)}
                )
        except AlreadyExists:
            return False
        return True

    async def session_usage(self, tenant_id: str) -> SessionUsage:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": "$status", "n": {"$sum": 1}, "s": {"$sum": "$duration"}}},
        ]
        total = seconds = active = 0
        with driver_errors():
            async for group in await self._db.collection("sessions").aggregate(pipeline):
                total += int(group["n"])
                seconds += int(group["s"] or 0)
                if group["_id"] == _ACTIVE:
                    active = int(group["n"])
        return SessionUsage(total_sessions=total, session_seconds=seconds, active_sessions=active)
