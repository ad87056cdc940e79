"""`python -m services.console`: serve the browser console and its gRPC-Web gateway."""

import asyncio

from services.console.server import main

if __name__ == "__main__":
    asyncio.run(main())
