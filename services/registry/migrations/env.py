from services.kit.db import run_migrations
from services.registry.repo import Base

run_migrations(Base.metadata)
