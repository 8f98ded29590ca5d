"""The README quickstart, written against the client openapi-python-client generates from
`/openapi.json`. Run in the generated client's own venv: `python quickstart.py URL KEY`;
prints one JSON line with what it saw."""

from __future__ import annotations

import json
import sys
import time

from switchboard_client import AuthenticatedClient
from switchboard_client.api.agents import list_agents
from switchboard_client.api.calls import create_call, get_call
from switchboard_client.models import CallStatus, CallView, CreateCallRequest, ErrorResponse

base_url, api_key = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=base_url, token=api_key, raise_on_unexpected_status=True)

# 1. Create a call with a phone number and an internal agent key.
created = create_call.sync_detailed(
    client=client, body=CreateCallRequest(phone="+996700000000", agent="altynai")
)
assert created.status_code == 201, created
call_id = created.parsed.call_id

# 2. Read its state by the returned call_id: within a few seconds it is completed.
deadline = time.monotonic() + 20
call = get_call.sync(call_id=call_id, client=client)
while not (isinstance(call, CallView) and call.status == CallStatus.COMPLETED):
    assert time.monotonic() < deadline, f"not completed: {call}"
    time.sleep(0.2)
    call = get_call.sync(call_id=call_id, client=client)

# 3. List the agents you may use.
agents = list_agents.sync(client=client)

# An error comes back as our error shape, typed.
missing = get_call.sync(call_id="00000000-0000-4000-8000-000000000000", client=client)
assert isinstance(missing, ErrorResponse), missing

print(
    json.dumps(
        {
            "call_id": call_id,
            "status": call.status.value,
            "transcript": call.transcript,
            "duration": call.duration,
            "agents": sorted(agent.key for agent in agents.data),
            "missing_code": missing.error.code,
        }
    )
)
