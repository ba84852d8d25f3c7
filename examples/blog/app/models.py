from datetime import datetime, timezone
from typing import Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from app import db


class Post(db.Model):
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    body: so.Mapped[str] = so.mapped_column(sa.String(1000))
    created: so.Mapped[datetime] = so.mapped_column(default=lambda: datetime.now(timezone.utc))
    # Filled in by the background worker (app/tasks.py).
    words: so.Mapped[Optional[int]] = so.mapped_column()
    title: so.Mapped[Optional[str]] = so.mapped_column(sa.String(200))  # migration 0002

    def as_dict(self):
        return {
            "id": self.id,
            "body": self.body,
            "words": self.words,
            "title": self.title,  # migration 0002
        }
