import os

# The daemon gives every process of the app its data folder, which outlives
# releases; `capstan run` has none, so the database sits beside the code.
DATA_DIR = os.environ.get("CAPSTAN_DATA_DIR") or os.path.dirname(os.path.abspath(__file__))


class Config:
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or "sqlite:///" + os.path.join(DATA_DIR, "blog.db")
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    LANGUAGES = ["en", "fr"]
    STATS_FILE = os.path.join(DATA_DIR, "stats.txt")
