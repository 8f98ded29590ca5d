"""What the test suite (`tests/`) and the benchmark (`bench/`) share.

Dev only: a member of the uv workspace installed through the root `dev` dependency group,
never a dependency of a service.

- `net`: a free loopback port.
- `servers`: an ASGI app on a real uvicorn server, in the running event loop.
- `processes`: a service as a real OS process (`python -m switchboard_<service>`).
- `mongo`: a MongoDB (MONGODB_URL, else a SecantusDB process).
"""
