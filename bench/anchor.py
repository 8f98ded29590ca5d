"""The anchor the API is measured against: a bare FastAPI app of the same shape
(`POST /v1/calls` validating the same body, `GET /v1/calls/{id}`), no auth, no store, no
broker, served by the same uvicorn settings as our services. Run as
`python -m bench.anchor PORT`."""

from __future__ import annotations

import sys
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class CreateCall(BaseModel):
    phone: str = Field(pattern=r"^\+[1-9]\d{1,14}$")
    agent: str
    variables: dict[str, str] = Field(default_factory=dict)


class Created(BaseModel):
    call_id: str
    status: str


@app.post("/v1/calls", status_code=201)
async def create_call(body: CreateCall) -> Created:
    return Created(call_id=str(uuid.uuid4()), status="queued")


@app.get("/v1/calls/{call_id}")
async def get_call(call_id: str) -> dict[str, object]:
    return {"call_id": call_id, "status": "queued", "agent": "altynai", "phone": "+996700000000"}


if __name__ == "__main__":
    from switchboard_shared.runtime.process import server_config_options

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), **server_config_options())
