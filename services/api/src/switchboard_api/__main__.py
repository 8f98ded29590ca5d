"""`python -m switchboard_api`: the public REST API alone."""

from switchboard_api.service import parts
from switchboard_shared.runtime.process import run_process

if __name__ == "__main__":
    run_process("api", lambda components: [parts(components)])
