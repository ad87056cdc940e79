from services.kit.db import run_migrations
from services.serve.repo import Base

run_migrations(Base.metadata)
