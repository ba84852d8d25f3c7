import os

from flask import current_app, request

from app import db
from app.main import bp
from app.models import Post


@bp.route("/")
def index():
    return "microblog"


@bp.route("/posts", methods=["POST"])
def add_post():
    post = Post(body=request.get_data(as_text=True))
    db.session.add(post)
    db.session.commit()
    return {"id": post.id, "bodies": [p.body for p in db.session.scalars(db.select(Post))]}


@bp.route("/env")
def env():
    return {
        "cwd": os.getcwd(),
        "FLASK_APP": os.environ.get("FLASK_APP"),
        "FLASK_DEBUG": os.environ.get("FLASK_DEBUG"),
        "debug": current_app.debug,
    }
