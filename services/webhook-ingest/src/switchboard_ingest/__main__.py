"""`python -m switchboard_ingest`: provider callbacks alone."""

from switchboard_ingest.service import parts
from switchboard_shared.runtime.process import run_process

if __name__ == "__main__":
    run_process("webhook-ingest", lambda components: [parts(components)])
