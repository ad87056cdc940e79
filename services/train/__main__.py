"""`python -m services.train`: run the train service (the control plane; workers run separately)."""

import asyncio

from services.train.server import main

if __name__ == "__main__":
    asyncio.run(main())
