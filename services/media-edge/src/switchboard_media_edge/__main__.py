"""`python -m switchboard_media_edge`: the browser sessions' media edge alone."""

from switchboard_media_edge.service import parts
from switchboard_shared.runtime.process import run_process

if __name__ == "__main__":
    run_process("media-edge", lambda components: [parts(components)])
