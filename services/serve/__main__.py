"""`python -m services.serve`: run the serve service (gRPC and the OpenAI-compatible HTTP API;
serving processes run separately: `python -m services.serve.worker`)."""

import asyncio

from services.serve.server import main

if __name__ == "__main__":
    asyncio.run(main())
