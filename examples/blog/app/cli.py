"""`flask stats`: what the cron job runs."""

from datetime import datetime, timezone

import click
import sqlalchemy as sa

from app import db
from app.models import Post


def register(app):
    @app.cli.command("stats")
    def stats():
        """Writes how many posts there are to the data folder's stats.txt."""
        count = db.session.scalar(sa.select(sa.func.count(Post.id)))
        line = f"{datetime.now(timezone.utc).isoformat()} posts={count}\n"
        with open(app.config["STATS_FILE"], "a") as stats_file:
            stats_file.write(line)
        click.echo(line.strip())
