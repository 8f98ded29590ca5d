"""How a record becomes a MongoDB document and back, how driver errors become the
port's, and how guard clauses join into one filter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError, PyMongoError

from switchboard_shared.adapters.store.common.records import stored_document
from switchboard_shared.ports import AlreadyExists, StoreError

M = TypeVar("M", bound=BaseModel)
Document = dict[str, Any]


def to_document(model: BaseModel, id_value: str) -> Document:
    """The stored fields of `model`, with `id_value` as `_id`."""
    return {"_id": id_value, **stored_document(model)}


def from_document(model: type[M], document: Document | None) -> M | None:
    """The record a found document holds; None for none found."""
    if document is None:
        return None
    return model.model_validate(strip_id(document))


def strip_id(document: Document) -> Document:
    """`document` without its `_id` (the record keeps its id in its own field)."""
    document.pop("_id", None)
    return document


@contextlib.contextmanager
def driver_errors() -> Iterator[None]:
    """Driver failures become the port's errors: a unique value taken is AlreadyExists,
    anything else StoreError."""
    try:
        yield
    except DuplicateKeyError as exc:
        raise AlreadyExists(str(exc)) from exc
    except PyMongoError as exc:
        raise StoreError(f"MongoDB: {exc}") from exc


def all_of(clauses: list[Document]) -> Document:
    """One filter document for all `clauses`; `$and` only when two name the same field
    (a flat filter lets any planner use an index)."""
    merged: Document = {}
    for clause in clauses:
        if merged.keys() & clause.keys():
            return {"$and": clauses}
        merged.update(clause)
    return merged
