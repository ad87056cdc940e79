"""`python -m services.data`: run the data service."""

import asyncio

from services.data.server import main

if __name__ == "__main__":
    asyncio.run(main())
