from services.kit.db import run_migrations
from services.train.repo import Base

run_migrations(Base.metadata)
